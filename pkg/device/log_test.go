package device

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SetPahoLogger can be called again while paho's globals are in use:
// they forward to the latest logger.
func TestSetPahoLoggerForwardsToTheLatest(t *testing.T) {
	t.Cleanup(func() { SetPahoLogger(nil) })
	var first, second bytes.Buffer
	SetPahoLogger(slog.New(slog.NewTextHandler(&first, &slog.HandlerOptions{Level: slog.LevelInfo})))
	paho.ERROR.Println("[client]", "password SharedAccessSignature sr=a&sig=secret&se=1")
	paho.DEBUG.Println("chatty")
	SetPahoLogger(slog.New(slog.NewTextHandler(&second, &slog.HandlerOptions{Level: slog.LevelDebug})))
	paho.DEBUG.Printf("now %s", "wanted")
	SetPahoLogger(nil)
	paho.CRITICAL.Println("dropped")

	if s := first.String(); !strings.Contains(s, "lib=paho") || !strings.Contains(s, "sig=REDACTED") || strings.Contains(s, "secret") || strings.Contains(s, "chatty") {
		t.Errorf("first logger got %q", s)
	}
	if s := second.String(); !strings.Contains(s, "now wanted") || strings.Contains(s, "dropped") || strings.Contains(s, "REDACTED") {
		t.Errorf("second logger got %q", s)
	}
}
