package graphtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// The network knob: the fake's API listener can go away and come back, so
// that tests see what a client sees when the service is unreachable.
//
//   - NetworkUp: normal service.
//   - NetworkRefuse: nothing listens on the API port any more, so a connect
//     fails at once with "connection refused"; every open connection (idle
//     keep-alive ones included) is closed. Back up, the fake listens again
//     on the same port.
//   - NetworkBlackhole: connections are accepted but no request is answered,
//     on new and on open connections, until the mode changes (then they are
//     served, as a healed network delivers what was waiting) or the client
//     gives up. A download being sent stops mid-body (after the 1 MiB chunk
//     in flight, content.go) and goes on once the mode changes back; other
//     replies already being written finish.
//
// The mode applies to everything the API listener serves, the /_fake/
// control API included: while the network is down, switch it back with
// SetNetwork, or through ControlHandler served on a listener of its own
// (`onedrivefs fake-server --control-addr`). Refusing connections needs the
// listener to be the fake's own (NewServer, Start); a fake served by the
// caller's http.Server can only be blackholed.

// NetworkMode is the state of the fake's network (SetNetwork).
type NetworkMode string

// Network modes.
const (
	NetworkUp        NetworkMode = "up"
	NetworkRefuse    NetworkMode = "refuse"
	NetworkBlackhole NetworkMode = "blackhole"
)

func (m NetworkMode) validate() error {
	switch m {
	case NetworkUp, NetworkRefuse, NetworkBlackhole:
		return nil
	}
	return fmt.Errorf("network mode must be %q, %q or %q, not %q", NetworkUp, NetworkRefuse, NetworkBlackhole, m)
}

// ErrNotListening is returned by SetNetwork(NetworkRefuse) for a fake that
// does not own its listener (built with New and served by the caller).
var ErrNotListening = errors.New("graphtest: the fake does not own its listener (use NewServer or Start)")

// network is the fake's own API listener and the network mode. It has its
// own lock, a leaf: never held while taking Server.mu, never taken by the
// tree's code.
type network struct {
	mu sync.Mutex
	// Guarded by mu.
	mode    NetworkMode   // "" is NetworkUp
	changed chan struct{} // closed and replaced at every mode change (and at close)
	closed  bool          // Close has begun: waiting requests give up
	hs      *http.Server  // nil until Start
	addr    string        // the API listener's address, to listen again on the same port
	ln      net.Listener  // the current listener; nil while refusing
	conns   map[net.Conn]struct{}
	// serving counts Serve goroutines; each ends when its listener closes.
	serving sync.WaitGroup
}

func (n *network) init() {
	n.mode = NetworkUp
	n.changed = make(chan struct{})
	n.conns = map[net.Conn]struct{}{}
}

// Start serves the fake on addr ("127.0.0.1:0" picks a free port) with an
// http.Server of its own, which SetNetwork can take down and bring back.
// It sets URL. Close stops it. NewServer calls it; `onedrivefs
// fake-server` too.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	n := &s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.hs != nil || n.closed {
		_ = ln.Close()
		return errors.New("graphtest: Start called twice, or after Close")
	}
	// No write timeout: downloads of large files take as long as they take.
	n.hs = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState:         n.track,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	n.addr = ln.Addr().String()
	s.URL = "http://" + n.addr
	s.transport = &http.Transport{}
	n.serveLocked(ln)
	return nil
}

// serveLocked serves ln in a goroutine that ends when ln is closed.
// Requires n.mu.
func (n *network) serveLocked(ln net.Listener) {
	n.ln = ln
	n.serving.Add(1)
	go func() {
		defer n.serving.Done()
		_ = n.hs.Serve(ln) // returns when ln is closed (refuse, Close)
	}()
}

// track keeps the set of open connections, to close them on refuse.
func (n *network) track(c net.Conn, st http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch st {
	case http.StateNew:
		n.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(n.conns, c)
	}
}

// connKey is the context key of the connection a request came on (on the
// fake's own listener).
type connKey struct{}

// closeConnsLocked closes every open connection but keep. Requires n.mu.
func (n *network) closeConnsLocked(keep net.Conn) {
	for c := range n.conns {
		if c != keep {
			_ = c.Close()
			delete(n.conns, c)
		}
	}
}

// SetNetwork switches the network to mode (see the top of network.go).
// Going from refuse back to up or blackhole listens again on the same
// port; if that fails (someone else took the port), the mode stays refuse
// and the error is returned.
func (s *Server) SetNetwork(mode NetworkMode) error { return s.setNetwork(mode, nil) }

// setNetwork is SetNetwork that, when refusing, leaves the connection keep
// open (the control request that asked for it, which closes after its
// reply).
func (s *Server) setNetwork(mode NetworkMode, keep net.Conn) error {
	if err := mode.validate(); err != nil {
		return err
	}
	n := &s.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("graphtest: the fake is closed")
	}
	if mode == n.mode {
		return nil
	}
	switch {
	case mode == NetworkRefuse:
		if n.hs == nil {
			return ErrNotListening
		}
		_ = n.ln.Close()
		n.ln = nil
		n.closeConnsLocked(keep)
	case n.mode == NetworkRefuse:
		ln, err := net.Listen("tcp", n.addr)
		if err != nil {
			return fmt.Errorf("graphtest: listening again on %s: %w", n.addr, err)
		}
		n.serveLocked(ln)
	}
	s.log.Info("fake network", "mode", string(mode), "was", string(n.mode))
	n.mode = mode
	close(n.changed)
	n.changed = make(chan struct{})
	return nil
}

// Network returns the network mode in force.
func (s *Server) Network() NetworkMode {
	s.net.mu.Lock()
	defer s.net.mu.Unlock()
	return s.net.mode
}

// awaitNetwork holds a request while the network is blackholed. It returns
// true when the request may be served, false when it must go unanswered:
// the network refuses (a request that arrived just before), the fake is
// closing, or the client gave up.
func (s *Server) awaitNetwork(r *http.Request) bool {
	counted := false
	for {
		n := &s.net
		n.mu.Lock()
		mode, changed, closed := n.mode, n.changed, n.closed
		n.mu.Unlock()
		switch {
		case closed:
			return false
		case mode == NetworkUp || mode == "":
			return true
		case mode == NetworkRefuse:
			return false
		}
		if !counted {
			s.stats.add(func(c *Stats) { c.Blackholed++ })
			counted = true
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return false
		}
	}
}

// stopServing shuts the listener down: waiting requests are released
// unanswered, requests being answered get a grace period, then every
// connection is closed. Close calls it.
func (s *Server) stopServing() {
	n := &s.net
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.changed)
	n.changed = make(chan struct{})
	hs := n.hs
	n.mu.Unlock()
	if hs == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		_ = hs.Close() // downloads still running after the grace period
	}
	n.mu.Lock()
	if n.ln != nil {
		_ = n.ln.Close()
		n.ln = nil
	}
	n.mu.Unlock()
	n.serving.Wait()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
}

// ControlHandler serves the /_fake/ control API alone, whatever the network
// mode: serve it on a listener of its own to switch the network of a fake
// whose API port is down. Other paths get 404.
func (s *Server) ControlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = s.withRequestInfo(r)
		rt := s.route(r)
		if rt.kind != routeControl {
			controlFail(w, http.StatusNotFound, "this listener serves only the control API, under /_fake/")
			return
		}
		s.serveControl(w, r, rt)
	})
}

// networkJSON is the body of GET and PUT /_fake/network.
type networkJSON struct {
	Mode NetworkMode `json:"mode"`
}
