//go:build call

package main

import (
	"flag"
	"io"
	"net/http"
	"sync"
)

var (
	backend = flag.String("backend", "", "GET this URL in every request before answering")
	idle    = flag.Int("idle", 0, "idle connections the calls keep per host (0: net/http's default, 2)")
)

// client is the client of the calls: net/http's default one, or with -idle a copy of its
// transport that keeps that many idle connections per host.
var client = sync.OnceValue(func() *http.Client {
	if *idle == 0 {
		return http.DefaultClient
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = *idle
	return &http.Client{Transport: transport}
})

func init() {
	beforeAnswer = func(w http.ResponseWriter) bool {
		if *backend == "" {
			return true
		}
		resp, err := client().Get(*backend)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return true
	}
}
