// onebox.deploy app for Go, deployed by the Molecule scenario `apps` and shown in
// docs/recipes.md: Debian's golang-go (1.19) and golang-github-coreos-go-systemd-dev
// (22.3.2), built offline in GOPATH mode by tests/harness/build-go-app.sh into the
// release directory, which runs it as bin/go-app.
package main

import (
	"context"
	"encoding/json"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	// Debian's package, in GOPATH mode: no /v22 in the import path.
	"github.com/coreos/go-systemd/activation"
)

const (
	idleGrace    = 500 * time.Millisecond // an idle keep-alive connection may still send a request
	drainTimeout = 8 * time.Second        // below the site's drain_timeout (10 s)
)

var ready, draining atomic.Bool

// health answers /livez (200 while alive, warm-up and drain included) and
// /readyz (200 only while serving); false for any other path.
func health(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case r.URL.Path == "/livez", r.URL.Path == "/readyz" && ready.Load() && !draining.Load():
		w.Write([]byte("ok\n"))
	case r.URL.Path == "/readyz":
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	default:
		return false
	}
	return true
}

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	// The health port first, so that the deploy can watch the warm-up
	// (host:port, [v6]:port or a bare port). Without a port of its own, the
	// public socket answers /livez and /readyz.
	if addr := os.Getenv("ONEBOX_HEALTH_LISTEN"); addr != "" && addr != os.Getenv("ONEBOX_LISTEN") {
		if !strings.Contains(addr, ":") {
			addr = ":" + addr
		}
		hln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		go http.Serve(hln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !health(w, r) {
				http.NotFound(w, r)
			}
		}))
	}

	// Warm-up before taking the socket: meanwhile connections wait in its
	// backlog (strategy restart) or go to the old instance (overlap).
	warmup, err := time.ParseDuration(os.Getenv("APP_WARMUP") + "s")
	if err != nil {
		warmup = 800 * time.Millisecond
	}
	select {
	case <-stop:
		return // stopped while warming up: nothing accepted, nothing to drain
	case <-time.After(warmup):
	}

	// The socket systemd passes (fd 3). Listeners() uses it only when LISTEN_PID
	// is this process, unsets LISTEN_*, and calls no listen(): the socket keeps
	// its Backlog=.
	var ln net.Listener
	if lns, err := activation.Listeners(); err == nil && len(lns) == 1 && lns[0] != nil {
		ln = lns[0]
		log.Print("serving the socket from systemd")
	} else if ln, err = net.Listen("tcp", "127.0.0.1:8080"); err == nil {
		log.Print("no socket from systemd: listening on 127.0.0.1:8080")
	} else {
		log.Fatal(err)
	}

	body, _ := json.Marshal(map[string]interface{}{"site": os.Getenv("ONEBOX_SITE"),
		"version": os.Getenv("ONEBOX_VERSION"), "pid": os.Getpid(), "server": "go"})
	var open atomic.Int64 // open public connections
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close") // net/http closes the connection after this response
			}
			if !health(w, r) {
				w.Header().Set("Content-Type", "application/json")
				w.Write(body)
			}
		}),
	}
	go srv.Serve(ln)
	ready.Store(true)

	<-stop
	// Drain: /readyz 503, every response from now on closes its connection.
	draining.Store(true)
	// Stop accepting: what waits in the backlog is for the next process.
	// This closes only this process's copy of the socket.
	ln.Close()
	// Idle grace: a request already on its way over a keep-alive connection
	// still gets its answer. Busy connections close after their next response.
	for deadline := time.Now().Add(idleGrace); open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// Then close the connections that stayed idle and wait for the requests in flight.
	srv.SetKeepAlivesEnabled(false)
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("drain cut short: %v", err)
	}
}
