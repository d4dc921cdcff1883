package service_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/iotctl/iotctl/internal/entratest"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// watchedSource passes on an EntraSource's tokens and closes late once
// it has given a token after the first one it gave expired.
type watchedSource struct {
	src   service.TokenSource
	mu    sync.Mutex
	first time.Time
	late  chan struct{}
	once  sync.Once
}

func (w *watchedSource) Token(ctx context.Context) (service.Token, error) {
	tok, err := w.src.Token(ctx)
	if err != nil {
		return tok, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.first.IsZero() {
		w.first = tok.Expiry
	} else if time.Now().After(w.first) {
		w.once.Do(func() { close(w.late) })
	}
	return tok, nil
}

// A client signed in with Microsoft Entra ID keeps working across the
// expiry of its token: azidentity gets a new one from the token
// endpoint (which issues tokens of a few seconds here), HTTPS presents
// it, and the AMQP connection puts it on $cbs before the hub, which
// closes links whose token expired, would close the C2D sender link.
func TestEntraTokenRenewedAcrossExpiry(t *testing.T) {
	const id, secret = "55555555-0000-0000-0000-00000000000e", "renew-secret-Vm4"
	cl := entratest.NewCloud(t)
	cl.Clients[id] = secret
	cl.TokenTTL = 5 * time.Second
	e, err := auth.NewEntra(auth.EntraOptions{JWKS: cl.Issuer.WriteJWKS(t, t.TempDir()), Issuer: cl.Issuer.Name,
		Roles: map[string][]string{id: {"IoT Hub Data Contributor"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, Entra: e, DisableLocalAuth: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cred, err := azidentity.NewClientSecretCredential(cl.Tenant, id, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: cl.URL + "/"}, Transport: cl.Client()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &watchedSource{src: service.NewEntraSource(cred), late: make(chan struct{})}
	c, err := service.NewWithTokenSource(h.HostName(), src, &service.Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "d1"}); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("before")}); err != nil {
		t.Fatalf("SendC2D before the first token expired: %v", err)
	}
	// The AMQP renewal asks for tokens at 80% of each one's life; wait
	// until it has asked after the first token expired.
	select {
	case <-src.late:
	case <-ctx.Done():
		t.Fatal("no token was asked for after the first one expired: the AMQP connection did not renew it")
	}
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("after")}); err != nil {
		t.Errorf("SendC2D on the same link after the first token expired: %v", err)
	}
	if _, err := c.GetDevice(ctx, "d1"); err != nil {
		t.Errorf("GetDevice after the first token expired: %v", err)
	}
}

// flakySource mints 5-second tokens and fails the second request (the
// first renewal); it closes late when it gives a token after the first
// one expired.
type flakySource struct {
	t     *testing.T
	is    *entratest.Issuer
	oid   string
	mu    sync.Mutex
	calls int
	first time.Time
	late  chan struct{}
}

func (f *flakySource) Token(context.Context) (service.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls == 2 {
		return service.Token{}, errors.New("token endpoint unavailable")
	}
	now := time.Now()
	if !f.first.IsZero() && now.After(f.first) {
		select {
		case <-f.late:
		default:
			close(f.late)
		}
	}
	// A JWT's exp is in whole seconds.
	exp := now.Add(5 * time.Second).Truncate(time.Second)
	if f.first.IsZero() {
		f.first = exp
	}
	return service.Token{Value: "Bearer " + f.is.Mint(f.t, f.oid, auth.Audience, exp.Sub(now)), Expiry: exp}, nil
}

// A renewal that fails is tried again while the current token lasts.
func TestAMQPRenewalRetried(t *testing.T) {
	is := entratest.NewIssuer(t, "https://issuer.test/tenant/v2.0")
	e, err := auth.NewEntra(auth.EntraOptions{JWKS: is.WriteJWKS(t, t.TempDir()), Issuer: is.Name,
		Roles: map[string][]string{"writer": {"IoT Hub Data Contributor"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, Entra: e})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.CreateDevice("d1"); err != nil {
		t.Fatal(err)
	}
	src := &flakySource{t: t, is: is, oid: "writer", late: make(chan struct{})}
	c, err := service.NewWithTokenSource(h.HostName(), src, &service.Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("before")}); err != nil {
		t.Fatalf("SendC2D: %v", err)
	}
	select {
	case <-src.late:
	case <-ctx.Done():
		t.Fatal("no token was asked for after the first one expired")
	}
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("after")}); err != nil {
		t.Errorf("SendC2D on the same link after a failed renewal and the first token's expiry: %v", err)
	}
}
