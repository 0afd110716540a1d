// Command hello is the server `cargo xtask bench` measures: net/http with one handler
// that writes "hello", after -work of busy CPU when given. Built with `-tags call`
// (call.go), it takes -backend URL and GETs that URL in every request before answering,
// to measure client spans too (-idle N keeps N idle connections to it); without the tag
// it is a plain hello world, with no HTTP client code in it at all. It listens on -addr
// and prints `listening on ADDR` once it does.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"
)

// beforeAnswer, when set (call.go), runs first in every request; false means it already
// answered.
var beforeAnswer func(w http.ResponseWriter) bool

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	work := flag.Duration("work", 0, "CPU time each request spends before answering (a busy loop)")
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
		if *work > 0 {
			burn(*work)
		}
		w.Write([]byte("hello"))
	})
	log.Fatal(http.Serve(ln, mux))
}

// sink keeps the busy loop from being optimised away.
var sink uint64

// burn spins for d of wall time (the server has one CPU to itself: CPU time).
func burn(d time.Duration) {
	start := time.Now()
	x := sink
	for time.Since(start) < d {
		for i := 0; i < 64; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink = x
}
