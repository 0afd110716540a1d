// Command net_http_server is the end-to-end test fixture for the tracer's net/http
// server and client probes: a plain net/http server whose routes cover the cases the tests
// check (methods, bodies, status codes, path patterns, a panicking handler, a slow
// handler, a handler that never returns, and with -exec one that replaces the process),
// and with -backend, routes that call another server (client.go).
//
// It listens on -addr (default 127.0.0.1:0, any free port) and prints exactly one line,
// "listening on 127.0.0.1:PORT", to stdout once the socket is bound, so a test knows
// where to send requests. The routes are registered by routes(), which has two
// versions: Go 1.22+ ServeMux patterns (routes_patterns.go) and the same routing done by
// hand for older toolchains (routes_legacy.go). Both answer every request identically;
// only the patterns make net/http set Request.Pattern (Go 1.23+), which the tracer
// reports as http.route.
//
// With -tls it serves HTTPS (a self-signed certificate made at start), where clients
// that offer it get HTTP/2 from net/http's bundled server; with -h2c (Go 1.24+) it
// serves HTTP/2 without TLS too; with -fetch it is instead a
// client that GETs the URLs given and prints each status and protocol. Its own clients
// accept any certificate and speak HTTP/2 to servers that offer it.
//
// It must build with every Go toolchain the tests use (1.19 up), standard library only.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// dialed holds the connections GET /dial opened.
var dialed struct {
	sync.Mutex
	conns []net.Conn
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	backend := flag.String("backend", "", "base URL the /call/ routes call (client.go); no /call/ routes without it")
	tick := flag.Duration("tick", 0, "call the backend's /hello this often from a background goroutine")
	ticks := flag.Int("ticks", 100, "stop the background calls after this many")
	useTLS := flag.Bool("tls", false, "serve HTTPS with a self-signed certificate; clients negotiate HTTP/2")
	h2c := flag.Bool("h2c", false, "serve (or with -fetch, send) HTTP/2 without TLS as well as HTTP/1 (Go 1.24+)")
	fetch := flag.String("fetch", "", "instead of serving: GET each of these comma-separated URLs, print \"STATUS PROTO\" per line, exit")
	execArgv := flag.String("exec", "", "GET /exec replaces the process with this space-separated command (absolute path first)")
	flag.Parse()

	// The fixture's clients trust any certificate (the servers' are self-signed) and
	// speak HTTP/2 to HTTPS servers that offer it.
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		t.ForceAttemptHTTP2 = true
		if *h2c {
			if fetchH2C == nil {
				fmt.Fprintln(os.Stderr, "net_http_server: -h2c needs Go 1.24+")
				os.Exit(2)
			}
			fetchH2C(t)
		}
	}
	if *fetch != "" {
		for _, url := range strings.Split(*fetch, ",") {
			resp, err := http.Get(url)
			if err != nil {
				fmt.Fprintln(os.Stderr, "net_http_server:", err)
				os.Exit(1)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			fmt.Printf("%d %s\n", resp.StatusCode, resp.Proto)
		}
		return
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "net_http_server:", err)
		os.Exit(1)
	}
	// os.Stdout is unbuffered: the line is out as soon as Printf returns.
	fmt.Printf("listening on %s\n", ln.Addr())

	mux := http.NewServeMux()
	routes(mux)
	// GET /chain: with -backend, GETs the backend's /chain (with the request's context)
	// and answers with its body; without, answers with the request's headers, one
	// "Name: value" line each, sorted: the end of a chain of services shows what the
	// last hop received. GET /chain?own=1 sends the program's own traceparent
	// (ownTraceparent) with the call, as a program instrumented by hand would.
	mux.HandleFunc("/chain", chain(*backend))
	// GET /redirect answers 302 to /hello (a client follows it with a second request).
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/hello", http.StatusFound)
	})
	// GET /dial?addr=HOST:PORT opens a TCP connection to addr, writes "ping\n" and keeps
	// it open until the process exits: a connection that is not HTTP.
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		conn, err := net.Dial("tcp", r.URL.Query().Get("addr"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn.Write([]byte("ping\n"))
		dialed.Lock()
		dialed.conns = append(dialed.conns, conn)
		dialed.Unlock()
		io.WriteString(w, "dialed\n")
	})
	// GET /block never returns: its handler waits for ever, its connection stays open.
	mux.HandleFunc("/block", func(http.ResponseWriter, *http.Request) {
		select {}
	})
	if *execArgv != "" {
		// GET /exec replaces the whole process, requests in flight included, with the
		// -exec command: no response is sent.
		argv := strings.Fields(*execArgv)
		mux.HandleFunc("/exec", func(w http.ResponseWriter, _ *http.Request) {
			err := syscall.Exec(argv[0], argv, os.Environ())
			http.Error(w, "exec "+argv[0]+": "+err.Error(), http.StatusInternalServerError)
		})
	}
	if *backend != "" {
		c, err := newCaller(*backend)
		if err != nil {
			fmt.Fprintln(os.Stderr, "net_http_server:", err)
			os.Exit(1)
		}
		mux.HandleFunc("/call/", c.serveCall)
		if *tick > 0 {
			go c.tick(*tick, *ticks)
		}
	}
	if *h2c {
		if serveH2C == nil {
			fmt.Fprintln(os.Stderr, "net_http_server: -h2c needs Go 1.24+")
			os.Exit(2)
		}
		srv := &http.Server{Handler: mux}
		serveH2C(srv)
		err := srv.Serve(ln)
		fmt.Fprintln(os.Stderr, "net_http_server:", err)
		os.Exit(1)
	}
	if *useTLS {
		cert, err := selfSigned()
		if err != nil {
			fmt.Fprintln(os.Stderr, "net_http_server:", err)
			os.Exit(1)
		}
		srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		// ServeTLS offers HTTP/2 (ALPN "h2") with the bundled server.
		err = srv.ServeTLS(ln, "", "")
		fmt.Fprintln(os.Stderr, "net_http_server:", err)
		os.Exit(1)
	}
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintln(os.Stderr, "net_http_server:", err)
		os.Exit(1)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and ::1, valid for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "net_http_server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serveH2C and fetchH2C turn on HTTP/2 without TLS for a server and a transport; nil
// before Go 1.24 (h2c.go).
var (
	serveH2C func(*http.Server)
	fetchH2C func(*http.Transport)
)

// ownTraceparent is what GET /chain?own=1 sends.
const ownTraceparent = "00-11111111111111111111111111111111-2222222222222222-01"

// chain serves GET /chain (see main).
func chain(backend string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if backend == "" {
			var lines []string
			for name, values := range r.Header {
				for _, value := range values {
					lines = append(lines, name+": "+value+"\n")
				}
			}
			sort.Strings(lines)
			io.WriteString(w, strings.Join(lines, ""))
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, backend+"/chain", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Get("own") == "1" {
			req.Header.Set("Traceparent", ownTraceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}
}

// hello answers GET /hello with 200 "hello".
func hello(w http.ResponseWriter, _ *http.Request) {
	io.WriteString(w, "hello")
}

// rewrite answers POST /rewrite with 200 "rewritten" after replacing the request's method
// and target, as method-override middleware does: the tracer reads them when the response
// is finished, where they no longer sit together in memory.
func rewrite(w http.ResponseWriter, r *http.Request) {
	r.Method = http.MethodPatch
	r.RequestURI = "/rewritten/" + r.URL.Query().Get("to") + "?by=" + r.URL.Query().Get("by")
	io.WriteString(w, "rewritten")
}

// createUser answers POST /users with 201 "created N", N the size of the body it read.
func createUser(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "created %d", n)
}

// getUser answers GET /users/{id} with 200 "user ID".
func getUser(w http.ResponseWriter, _ *http.Request, id string) {
	fmt.Fprintf(w, "user %s", id)
}

// updateUser answers PUT /users/{id} with 200 "updated ID N", N the size of the body.
func updateUser(w http.ResponseWriter, r *http.Request, id string) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "updated %s %d", id, n)
}

// deleteUser answers DELETE /users/{id} with 204 and no body.
func deleteUser(w http.ResponseWriter, _ *http.Request, _ string) {
	w.WriteHeader(http.StatusNoContent)
}

// status answers GET /status/{code} with that status code (200 to 599) and body
// "status CODE"; anything else is a 400.
func status(w http.ResponseWriter, _ *http.Request, code string) {
	c, err := strconv.Atoi(code)
	if err != nil || c < 200 || c > 599 {
		http.Error(w, "bad status code", http.StatusBadRequest)
		return
	}
	w.WriteHeader(c)
	fmt.Fprintf(w, "status %d", c)
}

// panicking panics. net/http recovers, logs the panic to stderr and closes the
// connection without a response.
func panicking(http.ResponseWriter, *http.Request) {
	panic("net_http_server: this handler panics on purpose")
}

// sleep answers GET /sleep?ms=N with 200 "slept N ms" after sleeping N milliseconds
// (0 to 60000).
func sleep(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60000 {
		http.Error(w, "ms must be 0 to 60000", http.StatusBadRequest)
		return
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	fmt.Fprintf(w, "slept %d ms", ms)
}
