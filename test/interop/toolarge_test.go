package interop

import (
	"net/http"
	"strings"
	"testing"
)

// TestNodeRegistryTwinTooLarge sends a 10 MB twin patch with the Node
// service SDK (Twin.update, an HTTPS PATCH): the SDK must get the hub's
// 413 answer with its message, not a dropped connection.
// (azure-iothub's RestApiClient.translateError has no case for 413: it
// makes a plain Error of the body's message, keeping the response.)
func TestNodeRegistryTwinTooLarge(t *testing.T) {
	e := newEnv(t)
	if err := e.hub.CreateDevice("huge-twin"); err != nil {
		t.Fatal(err)
	}
	_, nerr := e.service("updateTwin", map[string]any{"deviceId": "huge-twin", "padTagsTo": 10 << 20})
	if nerr == nil {
		t.Fatal("a 10 MB twin patch was accepted; want 413")
	}
	if nerr.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("error = %+v; want status 413", nerr)
	}
	if !strings.Contains(nerr.Message, "131072") {
		t.Errorf("message %q does not name the limit", nerr.Message)
	}
	// The hub still answers, and the twin is as it was.
	res, nerr := e.service("getTwin", map[string]any{"deviceId": "huge-twin"})
	if nerr != nil {
		t.Fatalf("getTwin after the 413: %+v", nerr)
	}
	if strings.Contains(string(res), "padding") {
		t.Fatalf("the too-large patch changed the twin: %s", res)
	}
}
