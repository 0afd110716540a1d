//go:build go1.24

package main

import "net/http"

// Go 1.24+ serves and sends HTTP/2 without TLS ("h2c", prior knowledge) when asked.
func init() {
	serveH2C = func(srv *http.Server) {
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		srv.Protocols = protocols
	}
	fetchH2C = func(t *http.Transport) {
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		t.Protocols = protocols
	}
}
