package hub

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The profile server answers Go's profiles on its own address, serves
// nothing else, and is gone once closed.
func TestProfileServer(t *testing.T) {
	p, err := startProfileServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string, error) {
		res, err := http.Get("http://" + p.addr + path)
		if err != nil {
			return 0, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}
	code, body, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(body, "goroutine profile:") {
		t.Errorf("GET /debug/pprof/goroutine?debug=1 = %d %.60q, %v; want 200 and the goroutine profile", code, body, err)
	}
	if code, _, err := get("/health"); err != nil || code != http.StatusNotFound {
		t.Errorf("GET /health on the profile server = %d, %v; want 404", code, err)
	}
	p.close()
	if _, _, err := get("/debug/pprof/"); err == nil {
		t.Error("the profile server still answers after close")
	}
}
