// Command offsets prints the ground truth the tracer's DWARF reading is checked against
// (tracer-user/tests/resolve.rs): the offsets the Go compiler gave the members of
// net/http.Request that the kernel programs read (unsafe.Offsetof), and the size of the
// struct (unsafe.Sizeof), as one JSON object on one stdout line:
//
//	{"go":"go1.24.11",
//	 "offsets":{"net/http.Request":{"Method":0,...}},
//	 "sizes":{"net/http.Request":256}}
//
// Structs are named by their full package path, as in DWARF; Request.Pattern is only
// present with Go 1.23+ (pattern.go), which added it.
//
// It also contains the net/http server (behind -serve, which the tests never set), so
// that the functions the tracer hooks are in the binary: serverHandler.ServeHTTP,
// (*response).finishRequest and (*conn).serve.func1.
//
// It must build with every Go toolchain the tests use (1.19 up), standard library only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
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
	flag.Parse()
	if *serve != "" {
		err := http.ListenAndServe(*serve, nil)
		fmt.Fprintln(os.Stderr, "offsets:", err)
		os.Exit(1)
	}

	var r http.Request
	request := members{
		"Method":     unsafe.Offsetof(r.Method),
		"RequestURI": unsafe.Offsetof(r.RequestURI),
		"ProtoMajor": unsafe.Offsetof(r.ProtoMajor),
		"ProtoMinor": unsafe.Offsetof(r.ProtoMinor),
		"Header":     unsafe.Offsetof(r.Header),
		"Host":       unsafe.Offsetof(r.Host),
		"RemoteAddr": unsafe.Offsetof(r.RemoteAddr),
		"TLS":        unsafe.Offsetof(r.TLS),
	}
	addPattern(request)

	out := output{
		Go: runtime.Version(),
		Offsets: map[string]members{
			"net/http.Request": request,
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
