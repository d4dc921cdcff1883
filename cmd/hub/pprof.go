package hub

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// profileServer serves Go's runtime profiles for hub serve --pprof-addr
// on a listener of its own, never on the hub's TLS port, through its
// own mux (importing net/http/pprof registers on http.DefaultServeMux,
// which nothing here serves).
type profileServer struct {
	addr string // the address it listens on, port 0 resolved
	srv  *http.Server
	done chan struct{}
}

func startProfileServer(addr string) (*profileServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	p := &profileServer{addr: ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln) // http.ErrServerClosed once close is called
	}()
	return p, nil
}

// close stops the server, cutting a profile being taken, and waits for
// it to end.
func (p *profileServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if p.srv.Shutdown(ctx) != nil {
		_ = p.srv.Close()
	}
	<-p.done
}
