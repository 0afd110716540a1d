// Command hello is the server `cargo xtask bench` measures: net/http with one handler
// that writes "hello". Built with `-tags call` (call.go), it takes -backend URL and GETs
// that URL in every request before answering, to measure client spans too; without the
// tag it is a plain hello world, with no HTTP client code in it at all. It listens on
// -addr and prints `listening on ADDR` once it does.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
)

// beforeAnswer, when set (call.go), runs first in every request; false means it already
// answered.
var beforeAnswer func(w http.ResponseWriter) bool

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if beforeAnswer != nil && !beforeAnswer(w) {
			return
		}
		w.Write([]byte("hello"))
	})
	log.Fatal(http.Serve(ln, mux))
}
