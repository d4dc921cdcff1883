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
	h := entraHub(t, cl.Issuer, id)
	cred, err := azidentity.NewClientSecretCredential(cl.Tenant, id, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: cl.URL + "/"}, Transport: cl.Client()},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &watchedSource{src: service.NewEntraSource(cred), late: make(chan struct{})}
	c, ctx := entraClient(t, h, src)
	if _, err := c.CreateDevice(ctx, &service.Device{DeviceID: "d1"}); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	sendAcrossExpiry(t, ctx, c, src.late)
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
	h := entraHub(t, is, "writer")
	if err := h.CreateDevice("d1"); err != nil {
		t.Fatal(err)
	}
	src := &flakySource{t: t, is: is, oid: "writer", late: make(chan struct{})}
	c, ctx := entraClient(t, h, src)
	sendAcrossExpiry(t, ctx, c, src.late)
}

// entraHub starts a hub that takes the issuer's tokens, with principal
// an IoT Hub Data Contributor.
func entraHub(t *testing.T, is *entratest.Issuer, principal string) *hub.Hub {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, DisableLocalAuth: true,
		Entra: is.HubAuth(t, map[string][]string{principal: {"IoT Hub Data Contributor"}})})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// entraClient is a client of h with src's tokens, and a context of a
// minute for the test.
func entraClient(t *testing.T, h *hub.Hub, src service.TokenSource) (*service.Client, context.Context) {
	t.Helper()
	c, err := service.NewWithTokenSource(h.HostName(), src, &service.Options{CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c, ctx
}

// sendAcrossExpiry sends a C2D message to d1, waits until late is
// closed (the token source gave a token after the first one expired:
// the AMQP renewal asks at 80% of each one's life), and sends another
// on the same link, which the hub closes when its token expires.
func sendAcrossExpiry(t *testing.T, ctx context.Context, c *service.Client, late <-chan struct{}) {
	t.Helper()
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("before")}); err != nil {
		t.Fatalf("SendC2D before the first token expired: %v", err)
	}
	select {
	case <-late:
	case <-ctx.Done():
		t.Fatal("no token was asked for after the first one expired: the AMQP connection did not renew it")
	}
	if err := c.SendC2D(ctx, "d1", "", &message.Message{Body: []byte("after")}); err != nil {
		t.Errorf("SendC2D on the same link after the first token expired: %v", err)
	}
}
