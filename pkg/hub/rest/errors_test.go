package rest

import (
	"strings"
	"testing"
	"time"
)

func TestErrorBodyShape(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/devices/ghost", "")
	wantError(t, r, 404, 404001, "DeviceNotFound")
	code, msg := nodeParse(r.body)
	if code != "DeviceNotFound" || !strings.Contains(msg, "ghost") {
		t.Errorf("Node reads %q, %q", code, msg)
	}
	m := decode(t, r.body)
	if !strings.HasPrefix(m["ExceptionMessage"].(string), "Tracking ID:") {
		t.Errorf("ExceptionMessage = %v", m["ExceptionMessage"])
	}
}

func TestErrorMessageSanitized(t *testing.T) {
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	s := errorMessage(400004, "ArgumentInvalid", `bad "value"; \ here`+"\n", "tid", now)
	body := `{"Message":` + jsonString(s) + `}`
	code, msg := nodeParse(body)
	if code != "ArgumentInvalid" || msg != `bad 'value', ' here ` {
		t.Errorf("Node reads %q, %q", code, msg)
	}
	if c := csharpParse(t, body); c != "400004" {
		t.Errorf("C# reads %s", c)
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
