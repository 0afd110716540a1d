//go:build !go1.22

// The routes of routes_patterns.go for toolchains before Go 1.22, whose ServeMux knows
// neither methods nor wildcards: the same answers, routed by hand. Requests handled
// here carry no pattern, so the tracer reports no http.route for them.

package main

import (
	"net/http"
	"strings"
)

func routes(mux *http.ServeMux) {
	mux.HandleFunc("/hello", only(http.MethodGet, hello))
	mux.HandleFunc("/users", only(http.MethodPost, createUser))
	mux.HandleFunc("/users/", func(w http.ResponseWriter, r *http.Request) {
		id, ok := lastSegment(r.URL.Path, "/users/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			getUser(w, r, id)
		case http.MethodPut:
			updateUser(w, r, id)
		case http.MethodDelete:
			deleteUser(w, r, id)
		default:
			w.Header().Set("Allow", "DELETE, GET, HEAD, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/status/", only(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		code, ok := lastSegment(r.URL.Path, "/status/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		status(w, r, code)
	}))
	mux.HandleFunc("/panic", only(http.MethodGet, panicking))
	mux.HandleFunc("/sleep", only(http.MethodGet, sleep))
	mux.HandleFunc("/rewrite", only(http.MethodPost, rewrite))
}

// only lets through the given method (and HEAD for GET, like a "GET /path" pattern)
// and answers 405 to the others.
func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	}
}

// lastSegment returns what follows prefix in path when it is one non-empty segment,
// like the {wildcard} at the end of a pattern.
func lastSegment(path, prefix string) (string, bool) {
	rest := strings.TrimPrefix(path, prefix)
	if rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}
