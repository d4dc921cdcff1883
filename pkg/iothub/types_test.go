package iothub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTimeJSON(t *testing.T) {
	tests := []struct {
		in   Time
		want string
	}{
		{Time{}, `"0001-01-01T00:00:00Z"`},
		{Time{Time: time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))}, `"2024-05-01T09:00:00.123Z"`},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(tt.in)
		if string(b) != tt.want {
			t.Errorf("Marshal(%v) = %s; want %s", tt.in, b, tt.want)
		}
		var back Time
		if err := json.Unmarshal(b, &back); err != nil || !back.Equal(tt.in.Truncate(time.Millisecond)) {
			t.Errorf("Unmarshal(%s) = %v, %v", b, back, err)
		}
	}
}

// Keys never reach a log or a %v.
func TestSymmetricKeyRedacts(t *testing.T) {
	k := SymmetricKey{PrimaryKey: "cHJpbWFyeQ==", SecondaryKey: "c2Vjb25kYXJ5"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "key", k)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", &k), b.String()} {
		if strings.Contains(s, k.PrimaryKey) || strings.Contains(s, k.SecondaryKey) {
			t.Errorf("output %q shows a key", s)
		}
	}
	j, _ := json.Marshal(k)
	if !strings.Contains(string(j), k.PrimaryKey) {
		t.Errorf("JSON %s lost the key; the wire format must carry it", j)
	}
}

func TestAuthenticationKeys(t *testing.T) {
	k := &SymmetricKey{PrimaryKey: "a"}
	if got := (&Authentication{Type: AuthSAS, SymmetricKey: k}).Keys(); got != k {
		t.Errorf("sas Keys() = %v", got)
	}
	if got := (&Authentication{Type: AuthSelfSigned, SymmetricKey: k}).Keys(); got != nil {
		t.Errorf("selfSigned Keys() = %v; want nil", got)
	}
	var none *Authentication
	if none.Keys() != nil {
		t.Error("nil Keys() != nil")
	}
}
