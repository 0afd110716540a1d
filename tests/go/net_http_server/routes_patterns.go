//go:build go1.22

// Go 1.22+ ServeMux patterns (method and wildcards). go.mod says go 1.19, which would
// default to the Go 1.21 mux (GODEBUG httpmuxgo121=1) where these patterns mean
// something else: the directive below turns the new mux on.
// https://pkg.go.dev/net/http#hdr-Patterns

//go:debug httpmuxgo121=0

package main

import "net/http"

func routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /hello", hello)
	mux.HandleFunc("POST /users", createUser)
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		getUser(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		updateUser(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("DELETE /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		deleteUser(w, r, r.PathValue("id"))
	})
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		status(w, r, r.PathValue("code"))
	})
	mux.HandleFunc("GET /panic", panicking)
	mux.HandleFunc("GET /sleep", sleep)
	mux.HandleFunc("POST /rewrite", rewrite)
}
