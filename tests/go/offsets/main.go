// Command offsets prints the ground truth the tracer's DWARF reading is checked against
// (tracer-user/tests/resolve.rs): the offsets the Go compiler gave the members of
// net/http.Request, net/url.URL and net/http.Response that the kernel programs read
// (unsafe.Offsetof), and the size of Request (unsafe.Sizeof), as one JSON object on one
// stdout line:
//
//	{"go":"go1.24.11",
//	 "offsets":{"net/http.Request":{"Method":0,...}},
//	 "sizes":{"net/http.Request":256}}
//
// Structs are named by their full package path, as in DWARF; Request.Pattern is only
// present with Go 1.23+ (pattern.go), which added it.
//
// It also contains the net/http server and client (behind -serve and -fetch, which the
// tests never set), so that the functions the tracer hooks are in the binary:
// serverHandler.ServeHTTP, (*response).finishRequest, (*conn).serve.func1, send and
// (*Client).send.
//
// It must build with every Go toolchain the tests use (1.19 up), standard library only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"unsafe"
)

// members maps member names to their offsets in one struct.
type members map[string]uintptr

// output is what is printed.
type output struct {
	Go      string             `json:"go"`
	Offsets map[string]members `json:"offsets"`
	Sizes   map[string]uintptr `json:"sizes"`
}

func main() {
	serve := flag.String("serve", "", "serve HTTP on this address (keeps the net/http server in the binary)")
	fetch := flag.String("fetch", "", "GET this URL (keeps the net/http client in the binary)")
	flag.Parse()
	if *fetch != "" {
		resp, err := http.Get(*fetch)
		if err != nil {
			fmt.Fprintln(os.Stderr, "offsets:", err)
			os.Exit(1)
		}
		resp.Body.Close()
		os.Exit(0)
	}
	if *serve != "" {
		err := http.ListenAndServe(*serve, nil)
		fmt.Fprintln(os.Stderr, "offsets:", err)
		os.Exit(1)
	}

	var r http.Request
	request := members{
		"Method":     unsafe.Offsetof(r.Method),
		"RequestURI": unsafe.Offsetof(r.RequestURI),
		"URL":        unsafe.Offsetof(r.URL),
		"ProtoMajor": unsafe.Offsetof(r.ProtoMajor),
		"ProtoMinor": unsafe.Offsetof(r.ProtoMinor),
		"Header":     unsafe.Offsetof(r.Header),
		"Host":       unsafe.Offsetof(r.Host),
		"RemoteAddr": unsafe.Offsetof(r.RemoteAddr),
		"TLS":        unsafe.Offsetof(r.TLS),
	}
	addPattern(request)

	var u url.URL
	location := members{
		"Scheme":   unsafe.Offsetof(u.Scheme),
		"Host":     unsafe.Offsetof(u.Host),
		"Path":     unsafe.Offsetof(u.Path),
		"RawQuery": unsafe.Offsetof(u.RawQuery),
	}
	var resp http.Response
	response := members{
		"StatusCode": unsafe.Offsetof(resp.StatusCode),
	}

	out := output{
		Go: runtime.Version(),
		Offsets: map[string]members{
			"net/http.Request":  request,
			"net/url.URL":       location,
			"net/http.Response": response,
		},
		Sizes: map[string]uintptr{
			"net/http.Request": unsafe.Sizeof(r),
		},
	}
	// One line: json.Encoder ends it with a newline; os.Stdout is unbuffered.
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "offsets:", err)
		os.Exit(1)
	}
}
