//go:build call

package main

import (
	"flag"
	"io"
	"net/http"
)

var backend = flag.String("backend", "", "GET this URL in every request before answering")

func init() {
	beforeAnswer = func(w http.ResponseWriter) bool {
		if *backend == "" {
			return true
		}
		resp, err := http.Get(*backend)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return true
	}
}
