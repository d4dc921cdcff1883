package benchkit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
)

// FetchPprof writes what a GET of url (a hub's /debug/pprof/ endpoint,
// served with --pprof-addr) answers to file.
func FetchPprof(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
