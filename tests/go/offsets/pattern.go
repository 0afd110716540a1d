//go:build go1.23

// Request.Pattern, added in Go 1.23: https://go.dev/doc/go1.23#nethttppkgnethttp

package main

import (
	"net/http"
	"unsafe"
)

func addPattern(request members) {
	var r http.Request
	request["Pattern"] = unsafe.Offsetof(r.Pattern)
}
