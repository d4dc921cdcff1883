package device

import (
	"encoding/json"
	"testing"
)

func TestReasonWords(t *testing.T) {
	for _, tt := range []struct {
		r    Reason
		want string
	}{
		{ReasonNone, ""},
		{ReasonConnectFailed, "connect failed"},
		{ReasonConnectionLost, "connection lost"},
		{ReasonTokenRenewal, "token renewal"},
		{ReasonReconnectRefused, "reconnect refused"},
		{ReasonClosed, "closed"},
		{Reason(200), "reason(200)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Reason(%d).String() = %q; want %q", tt.r, got, tt.want)
		}
	}
	b, err := json.Marshal(struct {
		R Reason `json:"reason,omitempty"`
		N Reason `json:"none,omitempty"`
	}{R: ReasonTokenRenewal})
	if err != nil || string(b) != `{"reason":"token renewal"}` {
		t.Errorf("json.Marshal = %s, %v; want the reason in words and ReasonNone left out", b, err)
	}
}
