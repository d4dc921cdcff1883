package service_test

import (
	"context"
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
