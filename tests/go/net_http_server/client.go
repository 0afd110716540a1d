package main

// Outgoing calls, for the tracer's client spans and parent links. Routes under /call/
// make requests to the -backend server (another instance of this fixture) in the ways the
// tests check, and answer 200 with one line per call: "STATUS" or "error: MESSAGE".
// With -tick, a background goroutine also calls the backend on a timer, outside any
// request.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// caller makes the outgoing calls of one fixture process.
type caller struct {
	backend string
	// refused is a loopback URL nothing listens on.
	refused string
	jobs    chan job
}

// job is a call handed to the worker pool with the context of the request that wants it.
type job struct {
	ctx    context.Context
	url    string
	result chan string
}

// poolWorkers is the number of long-lived worker goroutines.
const poolWorkers = 2

func newCaller(backend string) (*caller, error) {
	// A port that was free a moment ago and is closed now: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	refused := "http://" + ln.Addr().String() + "/"
	ln.Close()
	c := &caller{backend: strings.TrimSuffix(backend, "/"), refused: refused, jobs: make(chan job)}
	for i := 0; i < poolWorkers; i++ {
		go c.worker()
	}
	return c, nil
}

// worker serves jobs until the process exits, with each job's own context.
func (c *caller) worker() {
	for j := range c.jobs {
		j.result <- c.getWithContext(j.ctx, j.url)
	}
}

// get calls url with http.Get: no context of the caller.
func (c *caller) get(url string) string {
	return outcome(http.Get(url))
}

// getWithContext calls url with a request built with ctx.
func (c *caller) getWithContext(ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	return outcome(http.DefaultClient.Do(req))
}

func outcome(resp *http.Response, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// inGoroutines runs each call on its own new goroutine and waits for all of them.
func inGoroutines(calls ...func() string) []string {
	results := make([]string, len(calls))
	var wg sync.WaitGroup
	for i, call := range calls {
		wg.Add(1)
		go func(i int, call func() string) {
			defer wg.Done()
			results[i] = call()
		}(i, call)
	}
	wg.Wait()
	return results
}

// serveCall answers GET /call/KIND:
//
//	same      one call on the handler's goroutine, no context
//	ctx       one call on the handler's goroutine, with the request's context
//	go        one call on a goroutine the handler starts, no context
//	fanout    three calls, each on a goroutine the handler starts, no context
//	deep      one call on a goroutine started by a goroutine the handler starts
//	goctx     one call on a goroutine the handler starts, with the request's context
//	pool      one call by a long-lived worker, with the request's context
//	refused   one call to a closed port
//	timeout   one call to the backend's /sleep with a 100 ms client timeout
//	notfound  one call that the backend answers 404
//	redirect  one call to the backend's /redirect, which redirects to /hello: two
//	          requests sent
//	transport one call through a client with a RoundTripper of its own
//	canceled  one call to the backend's /sleep, its context canceled after 100 ms
//	late      one call 300 ms later, on a goroutine the handler starts and does not
//	          wait for: after the request ended
func (c *caller) serveCall(w http.ResponseWriter, r *http.Request) {
	hello := c.backend + "/hello"
	var results []string
	switch strings.TrimPrefix(r.URL.Path, "/call/") {
	case "same":
		results = []string{c.get(hello)}
	case "ctx":
		results = []string{c.getWithContext(r.Context(), hello)}
	case "go":
		results = inGoroutines(func() string { return c.get(hello) })
	case "fanout":
		call := func() string { return c.get(hello) }
		results = inGoroutines(call, call, call)
	case "deep":
		results = inGoroutines(func() string {
			return inGoroutines(func() string { return c.get(hello) })[0]
		})
	case "goctx":
		results = inGoroutines(func() string { return c.getWithContext(r.Context(), hello) })
	case "pool":
		j := job{ctx: r.Context(), url: hello, result: make(chan string, 1)}
		c.jobs <- j
		results = []string{<-j.result}
	case "refused":
		results = []string{c.get(c.refused)}
	case "timeout":
		client := http.Client{Timeout: 100 * time.Millisecond}
		results = []string{outcome(client.Get(c.backend + "/sleep?ms=1000"))}
	case "notfound":
		results = []string{c.get(c.backend + "/no/such/page")}
	case "redirect":
		results = []string{c.get(c.backend + "/redirect")}
	case "transport":
		client := http.Client{Transport: &countingTransport{next: http.DefaultTransport}}
		results = []string{outcome(client.Get(hello))}
	case "canceled":
		ctx, cancel := context.WithCancel(r.Context())
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		results = []string{c.getWithContext(ctx, c.backend+"/sleep?ms=1000")}
		timer.Stop()
		cancel()
	case "late":
		go func() {
			time.Sleep(300 * time.Millisecond)
			c.get(hello)
		}()
		results = []string{"started"}
	default:
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, strings.Join(results, "\n")+"\n")
}

// countingTransport is a RoundTripper of the program's own, as middleware that wraps
// transports (retries, metrics, auth) is.
type countingTransport struct {
	next  http.RoundTripper
	mu    sync.Mutex
	calls int
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.calls++
	t.mu.Unlock()
	return t.next.RoundTrip(req)
}

// tick calls the backend's /hello every period, count times, from a goroutine of its
// own that no request started.
func (c *caller) tick(period time.Duration, count int) {
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for i := 0; i < count; i++ {
		<-ticker.C
		c.get(c.backend + "/hello")
	}
}
