package service

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

// No error and no debug log line carries the key, the signature or the
// Authorization header, whatever goes wrong.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	var sig string
	s := newHubServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		tok, _ := sas.Parse(r.Header.Get("Authorization"))
		if tok != nil {
			sig = tok.Signature
		}
		switch r.URL.Path {
		case "/devices/unauthorized":
			answer(w, 401, "IotHubUnauthorizedAccess", hubForm(401002, "IotHubUnauthorizedAccess", "signature mismatch"))
		case "/devices/garbage":
			answer(w, 200, "", "{not json")
		default:
			answer(w, 404, "DeviceNotFound", legacyForm("DeviceNotFound", "nope"))
		}
	})
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := s.client(t, &Options{Logger: log, Retries: 1})
	down, err := New(connectionString("localhost:1"), &Options{Logger: log, Retries: 1, RootCAs: getPKI(t).pool})
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := New(connectionString("localhost:"+s.port()), &Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()

	var errs []error
	for _, f := range []func() error{
		func() error { _, err := c.GetDevice(ctxT(t), "unauthorized"); return err },
		func() error { _, err := c.GetDevice(ctxT(t), "garbage"); return err },
		func() error {
			_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "x"}, MethodCall{Name: "m"})
			return err
		},
		func() error { _, err := down.GetDevice(ctxT(t), "d"); return err },
		func() error { _, err := untrusted.GetDevice(ctxT(t), "d"); return err },
		func() error { _, err := c.GetDevice(expired, "d"); return err },
		func() error {
			_, err := New(connstr.MustParse("HostName=h.test;DeviceId=d;SharedAccessKey="+testKey), nil)
			return err
		},
	} {
		err := f()
		if err == nil {
			t.Fatal("a failing call succeeded")
		}
		errs = append(errs, err)
	}
	if sig == "" {
		t.Fatal("the server saw no signature")
	}
	key, _ := base64.StdEncoding.DecodeString(testKey)
	plainSig, _ := url.QueryUnescape(sig)
	secrets := []string{testKey, string(key), sig, plainSig, "sig="}
	if !strings.Contains(logs.String(), "service request") {
		t.Errorf("no debug log of the requests: %q", logs.String())
	}
	for _, err := range errs {
		for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			for _, secret := range secrets {
				if strings.Contains(text, secret) {
					t.Errorf("error %q contains a secret (%.6s…)", text, secret)
				}
			}
		}
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		for _, secret := range secrets {
			if strings.Contains(line, secret) {
				t.Errorf("log line %q contains a secret (%.6s…)", line, secret)
			}
		}
	}
}
