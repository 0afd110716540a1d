// Command hello is the server `cargo xtask bench` measures: net/http with one handler
// that writes "hello" (with -backend URL, after one GET of that URL, to measure client
// spans too). It listens on -addr and prints `listening on ADDR` once it does.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	backend := flag.String("backend", "", "GET this URL in every request before answering")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if *backend != "" {
			resp, err := http.Get(*backend)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		w.Write([]byte("hello"))
	})
	log.Fatal(http.Serve(ln, mux))
}
