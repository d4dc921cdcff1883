package sas

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func mustKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := DecodeKey(s)
	if err != nil {
		t.Fatalf("DecodeKey(%q) = %v", s, err)
	}
	return k
}

// lenientKey decodes a key the way Node's Buffer.from(s, 'base64') does
// for the SDK vectors whose keys are not valid padded base64.
func lenientKey(t *testing.T, s string) []byte {
	t.Helper()
	k, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("RawStdEncoding.DecodeString(%q) = %v", s, err)
	}
	return k
}

func at(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }

func TestKnownAnswerVectors(t *testing.T) {
	// azure-iot-sdk-node common/core/test/_shared_access_signature_test.js:
	// sr "uri" used verbatim.
	t.Run("node common token with key name", func(t *testing.T) {
		key := mustKey(t, "cGFzc3dvcmQ=")
		if got, want := Signature(key, "uri", "12345"), "kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk="; got != want {
			t.Fatalf("Signature = %q; want %q", got, want)
		}
		tok, err := Sign("uri", key, &SignOptions{KeyName: "encode('Me')", Expiry: time.Unix(12345, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345&skn=encode%28%27Me%27%29"
		if got := tok.Encode(); got != want {
			t.Fatalf("Encode() = %q; want %q", got, want)
		}
		nodeOrder := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&skn=encode%28%27Me%27%29&se=12345"
		p, err := Parse(nodeOrder)
		if err != nil {
			t.Fatalf("Parse(%q) = %v", nodeOrder, err)
		}
		if p.KeyName != "encode('Me')" {
			t.Errorf("KeyName = %q; want encode('Me')", p.KeyName)
		}
		if got := p.Encode(); got != nodeOrder {
			t.Errorf("Encode() of parsed = %q; want the original order %q", got, nodeOrder)
		}
		if err := Verify(p, key, time.Unix(12000, 0)); err != nil {
			t.Errorf("Verify = %v; want nil", err)
		}
	})
	t.Run("node common token without key name", func(t *testing.T) {
		tok, err := Sign("uri", mustKey(t, "cGFzc3dvcmQ="), &SignOptions{Expiry: time.Unix(12345, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := "SharedAccessSignature sr=uri&sig=kcWxXAK2OAaAoq2oCkaGzX2NMqDB8nCyNuq2fPYCDhk%3D&se=12345"
		if got := tok.Encode(); got != want {
			t.Fatalf("Encode() = %q; want %q", got, want)
		}
	})
	t.Run("node hmacHash", func(t *testing.T) {
		if got, want := Sum(mustKey(t, "cGFzc3dvcmQ="), "string-to-sign"), "o1n1hiIVgzVA2+krq9ty1Z4xsIJKJZP3dYT8MOi65Y4="; got != want {
			t.Fatalf("Sum = %q; want %q", got, want)
		}
	})
	t.Run("node device token with lenient key", func(t *testing.T) {
		key := lenientKey(t, "key")
		if len(key) != 2 || key[0] != 0x91 || key[1] != 0xEC {
			t.Fatalf("lenient key = % x; want 91 ec", key)
		}
		tok, err := Sign(DeviceResource("host", "device"), key, &SignOptions{Expiry: time.Unix(12345, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := "SharedAccessSignature sr=host%2Fdevices%2Fdevice&sig=wM3XiP6gD960IxP7J5WHqnxQHEcWC6YaQCtoMT%2BkKHc%3D&se=12345"
		if got := tok.Encode(); got != want {
			t.Fatalf("Encode() = %q; want %q", got, want)
		}
	})
	t.Run("node service token with lenient key", func(t *testing.T) {
		nodeToken := "SharedAccessSignature sr=host&sig=88JmrIsVYOGmRSjCO1x1LLbv0K001Gikh1rjfJqbQXA%3D&skn=policy&se=12345"
		p, err := Parse(nodeToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(p, lenientKey(t, "key"), time.Unix(1, 0)); err != nil {
			t.Fatalf("Verify(%q) = %v", nodeToken, err)
		}
		tok, err := Sign("host", lenientKey(t, "key"), &SignOptions{KeyName: "policy", Now: at(12345 - 3600)})
		if err != nil {
			t.Fatal(err)
		}
		if tok.Signature != p.Signature || tok.ExpiryText != "12345" {
			t.Fatalf("Sign = %q; want sig %q", tok.Encode(), p.Signature)
		}
	})
	t.Run("python signing mechanism", func(t *testing.T) {
		key := mustKey(t, "NMgJDvdKTxjLi+xBxxkDDEwDJxEvOE5u8BiT0mVgPeg=")
		if got, want := Sum(key, "sign this message"), "8NJRMT83CcplGrAGaUVIUM/md5914KpWVNngSVoF9/M="; got != want {
			t.Fatalf("Sum = %q; want %q", got, want)
		}
	})
	t.Run("policy token for a hub", func(t *testing.T) {
		tok, err := Sign("test.azure-devices.net", mustKey(t, "c2VjcmV0"), &SignOptions{KeyName: "owner", Expiry: time.Unix(1546308061, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := "SharedAccessSignature sr=test.azure-devices.net&sig=uux4PSAK1s9efNcBHin0pm7O5oENedTWkhqGp8JAyFY%3D&se=1546308061&skn=owner"
		if got := tok.Encode(); got != want {
			t.Fatalf("Encode() = %q; want %q", got, want)
		}
	})
}

func TestParseAcceptsAnyFieldOrderAndEncoding(t *testing.T) {
	key := mustKey(t, "c2VjcmV0")
	sig := Signature(key, "h/devices/d", "2000000000")
	lowerSig := strings.NewReplacer("+", "%2b", "/", "%2f", "=", "%3d").Replace(sig)
	rawSr := Signature(key, "h%2fdevices%2fd", "2000000000")
	tests := []struct {
		name, token string
	}{
		{"python order", "SharedAccessSignature sr=h/devices/d&sig=" + EncodeResource(sig) + "&se=2000000000&skn="},
		{"docs order", "SharedAccessSignature sig=" + EncodeResource(sig) + "&se=2000000000&sr=h/devices/d"},
		{"lower-case hex in sig", "SharedAccessSignature sr=h/devices/d&sig=" + lowerSig + "&se=2000000000"},
		{"lower-case hex in sr", "SharedAccessSignature sr=h%2fdevices%2fd&sig=" + EncodeResource(rawSr) + "&se=2000000000"},
		{"surrounding white space", "  SharedAccessSignature  sr=h/devices/d&sig=" + EncodeResource(sig) + "&se=2000000000\n"},
		{"unknown field ignored", "SharedAccessSignature sr=h/devices/d&sig=" + EncodeResource(sig) + "&se=2000000000&x=y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse(tt.token)
			if err != nil {
				t.Fatalf("Parse(%q) = %v", tt.token, err)
			}
			if tok.KeyName != "" {
				t.Errorf("KeyName = %q; want empty", tok.KeyName)
			}
			if err := Verify(tok, key, time.Unix(1999999999, 0)); err != nil {
				t.Errorf("Verify(%q) = %v; want nil", tt.token, err)
			}
			if got := tok.Scope(); got != "h/devices/d" {
				t.Errorf("Scope() = %q; want h/devices/d", got)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, token, want string
	}{
		{"empty", "", "does not start"},
		{"wrong prefix", "SharedAccessKey sr=a&sig=b&se=1", "does not start"},
		{"no space", "SharedAccessSignaturesr=a&sig=b&se=1", "expected a space"},
		{"no fields", "SharedAccessSignature ", "no fields"},
		{"missing sr", "SharedAccessSignature sig=b&se=1", "missing field sr"},
		{"missing sig", "SharedAccessSignature sr=a&se=1", "missing field sig"},
		{"missing se", "SharedAccessSignature sr=a&sig=b", "missing field se"},
		{"duplicate sr", "SharedAccessSignature sr=a&sr=b&sig=b&se=1", "sr appears twice"},
		{"field without =", "SharedAccessSignature sr=a&sig&se=1", "has no '='"},
		{"se not a number", "SharedAccessSignature sr=a&sig=b&se=soon", "not a positive decimal"},
		{"se zero", "SharedAccessSignature sr=a&sig=b&se=0", "not a positive decimal"},
		{"se negative", "SharedAccessSignature sr=a&sig=b&se=-5", "not a positive decimal"},
		{"se with plus", "SharedAccessSignature sr=a&sig=b&se=+5", "not a positive decimal"},
		{"empty sr", "SharedAccessSignature sr=&sig=b&se=1", "empty sr"},
		{"space in sr (found by fuzzing)", "SharedAccessSignature sig=0&se=1&sr= &", "white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.token)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse(%q) = %v; want ErrMalformed mentioning %q", tt.token, err, tt.want)
			}
		})
	}
}

func TestVerifyRejectsEveryTamperedByte(t *testing.T) {
	key := mustKey(t, "c2VjcmV0")
	tok, err := Sign(DeviceResource("hub.example.net", "dev1"), key, &SignOptions{Expiry: time.Unix(2000000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000000000, 0)
	if err := Verify(tok, key, now); err != nil {
		t.Fatalf("Verify(untampered) = %v", err)
	}
	fields := map[string]*string{"sr": &tok.Resource, "se": &tok.ExpiryText, "sig": &tok.Signature}
	for name, f := range fields {
		orig := *f
		for i := 0; i < len(orig); i++ {
			b := []byte(orig)
			b[i] ^= 0x01
			*f = string(b)
			p, perr := Parse(tok.Encode())
			if perr == nil {
				perr = Verify(p, key, now)
			}
			if perr == nil {
				t.Errorf("%s with byte %d changed (%q) verified; want an error", name, i, *f)
			}
		}
		*f = orig
	}
}

func TestVerifyExpiryAndKey(t *testing.T) {
	key := mustKey(t, "c2VjcmV0")
	tok, err := Sign("hub.example.net", key, &SignOptions{KeyName: "service", Now: at(1000), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.ExpiryUnix(); got != 1060 {
		t.Fatalf("ExpiryUnix() = %d; want 1060", got)
	}
	if err := Verify(tok, key, time.Unix(1060, 0)); err != nil {
		t.Errorf("Verify at se = %v; want nil (valid until now > se)", err)
	}
	if err := Verify(tok, key, time.Unix(1061, 0)); !errors.Is(err, ErrExpired) {
		t.Errorf("Verify after se = %v; want ErrExpired", err)
	}
	if err := Verify(tok, mustKey(t, "b3RoZXI="), time.Unix(1000, 0)); !errors.Is(err, ErrSignature) {
		t.Errorf("Verify with another key = %v; want ErrSignature", err)
	}
}

func TestSignDefaultsToOneHour(t *testing.T) {
	tok, err := Sign("h", []byte("k"), &SignOptions{Now: at(5000)})
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.ExpiryUnix(); got != 5000+3600 {
		t.Fatalf("ExpiryUnix() = %d; want %d", got, 5000+3600)
	}
}

func TestSignRejectsBadInput(t *testing.T) {
	if _, err := Sign("", []byte("k"), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign(empty resource) = %v; want ErrMalformed", err)
	}
	if _, err := Sign("h", nil, nil); !errors.Is(err, ErrKey) {
		t.Errorf("Sign(nil key) = %v; want ErrKey", err)
	}
	if _, err := Sign("h", []byte("k"), &SignOptions{Expiry: time.Unix(-10, 0)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("Sign(expiry before epoch) = %v; want ErrMalformed", err)
	}
}

func TestDecodeKey(t *testing.T) {
	for _, bad := range []string{"", "not*base64", "key", "c2VjcmV0=", "c2VjcmV", "c2Vj\rcmV0", "c2VjcmV0\n"} {
		if _, err := DecodeKey(bad); !errors.Is(err, ErrKey) {
			t.Errorf("DecodeKey(%q) = %v; want ErrKey", bad, err)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		scope, resource string
		want            bool
	}{
		{"hub.net", "hub.net/devices/d1", true},
		{"HUB.net", "hub.net/devices/d1", true},
		{"hub.net/devices/d1", "hub.net/devices/d1", true},
		{"hub.net/devices/d1", "hub.net/devices/d1/modules/m", true},
		{"hub.net/devices/d1", "hub.net/devices/d11", false},
		{"hub.net/devices/d1/modules/m", "hub.net/devices/d1", false},
		{"hub.net/devices", "hub.net/devices/d1", true},
		{"other.net", "hub.net/devices/d1", false},
		{"localhost:8443/devices/d1", "localhost:8443/devices/d1", true},
		{"localhost:8443/devices/d1", "localhost/devices/d1", true},
		{"localhost:8443/devices/d1", "localhost:9999/devices/d1", false},
		{"sb://hub.net/events/", "hub.net/events", true},
		{"hub.net/devices/d1/", "hub.net/devices/d1", true},
	}
	for _, tt := range tests {
		if got := Covers(tt.scope, tt.resource); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v; want %v", tt.scope, tt.resource, got, tt.want)
		}
	}
}

func TestStringRedactsSignature(t *testing.T) {
	tok, err := Sign("hub.net", []byte("k"), &SignOptions{KeyName: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok.String(), tok.LogValue().String()} {
		if strings.Contains(s, tok.Signature) {
			t.Errorf("%q contains the signature", s)
		}
	}
	if !strings.Contains(tok.String(), "sig=REDACTED") {
		t.Errorf("String() = %q; want sig=REDACTED", tok.String())
	}
}

func TestEncodeResource(t *testing.T) {
	if got, want := EncodeResource("localhost:18883/devices/dev 1*"), "localhost%3A18883%2Fdevices%2Fdev%201%2A"; got != want {
		t.Fatalf("EncodeResource = %q; want %q", got, want)
	}
}
