package hub_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/entratest"
	"github.com/iotctl/iotctl/pkg/connstr"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// entraEnv is a hub with local authentication disabled that trusts the
// tokens of an Entra ID stand-in, a plain hub, and that stand-in, which
// also answers as Azure Resource Manager for both hubs.
type entraEnv struct {
	cloud        *entratest.Cloud
	entraHub     *hubsrv.Hub
	keyHub       *regEnv
	caFile       string
	subscription string
}

const (
	writerID, writerSecret = "11111111-0000-0000-0000-00000000000a", "writer-secret-Zq8"
	readerID, readerSecret = "22222222-0000-0000-0000-00000000000b", "reader-secret-Yp7"
	// The ARM reader may find hubs but not list their keys.
	armReaderID, armReaderSecret = "44444444-0000-0000-0000-00000000000d", "armreader-secret-Wn5"
	deniedID, deniedSecret       = "33333333-0000-0000-0000-00000000000c", "denied-secret-Xo6"
)

func startEntraEnv(t *testing.T) *entraEnv {
	t.Helper()
	cloud := entratest.NewCloud(t)
	cloud.Clients[writerID] = writerSecret
	cloud.Clients[readerID] = readerSecret
	cloud.Clients[deniedID] = deniedSecret
	cloud.Clients[armReaderID] = armReaderSecret
	cloud.Forbidden[deniedID] = true
	cloud.Readers[armReaderID] = true
	dir := t.TempDir()
	e := cloud.Issuer.HubAuth(t, map[string][]string{writerID: {"IoT Hub Data Contributor"}, readerID: {"IoT Hub Data Reader"}, armReaderID: {"IoT Hub Data Contributor"}})
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", InMemory: true, Entra: e, DisableLocalAuth: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("hub Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	keyHub := startRegEnv(t)
	// One CA file trusts both hubs and the stand-in.
	var bundle []byte
	for _, f := range []string{h.CAFile(), keyHub.hub.CAFile(), cloud.CAFile(t, dir)} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, b...)
	}
	caFile := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(caFile, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	kcs := connstr.MustParse(keyHub.cs)
	rcs, err := keyHub.hub.ServiceConnectionString("registryRead")
	if err != nil {
		t.Fatal(err)
	}
	ehcs, err := h.EventHubConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	eh := connstr.MustParse(ehcs)
	env := &entraEnv{cloud: cloud, entraHub: h, keyHub: keyHub, caFile: caFile, subscription: "sub-1"}
	cloud.Hubs = []entratest.Hub{
		{Subscription: env.subscription, ResourceGroup: "rg-entra", Name: "entrahub", HostName: h.HostName(),
			Keys: map[string]string{"iothubowner": eh.SharedAccessKey}, EventHubEndpoint: eh.Endpoint, EventHubPath: eh.EntityPath},
		{Subscription: env.subscription, ResourceGroup: "rg-key", Name: "keyhub", HostName: kcs.HostName, Keys: map[string]string{"iothubowner": kcs.SharedAccessKey, "registryRead": connstr.MustParse(rcs).SharedAccessKey}},
	}
	return env
}

// run runs iotctl signed in as the client id, against the Entra hub by
// its host unless args name a hub otherwise.
func (e *entraEnv) run(t *testing.T, clientID, secret string, args ...string) regResult {
	t.Helper()
	return runFactory(t, e.signIn(clientID, secret), args...)
}

// env is the environment of iotctl signed in as the client id.
func (e *entraEnv) env(clientID, secret string) map[string]string {
	return map[string]string{
		"AZURE_TENANT_ID":               e.cloud.Tenant,
		"AZURE_CLIENT_ID":               clientID,
		"AZURE_CLIENT_SECRET":           secret,
		"AZURE_AUTHORITY_HOST":          e.cloud.URL,
		"AZURE_SUBSCRIPTION_ID":         "",
		"AZURE_FEDERATED_TOKEN_FILE":    "",
		"AZURE_CLIENT_CERTIFICATE_PATH": "",
		"IOTCTL_CA_FILE":                e.caFile,
		"IOTCTL_HOST":                   e.entraHub.HostName(),
		"IOTCTL_AUTH_TYPE":              "login",
		"IOTCTL_ARM_ENDPOINT":           e.cloud.URL,
	}
}

func TestEntraLoginWithRoles(t *testing.T) {
	t.Parallel() // no t.Setenv: see signIn
	e := startEntraEnv(t)
	secretsIn := func(t *testing.T, r regResult) {
		t.Helper()
		for _, s := range []string{writerSecret, readerSecret, "eyJ"} {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Errorf("output holds a secret or token (%.3s...): stdout %q stderr %q", s, r.stdout, r.stderr)
			}
		}
	}
	ok := func(t *testing.T, id, secret string, args ...string) string {
		t.Helper()
		r := e.run(t, id, secret, append(args, "--log-level", "debug")...)
		secretsIn(t, r)
		if r.code != 0 {
			t.Fatalf("iotctl %s as %s: exit %d stderr %q", strings.Join(args, " "), id, r.code, r.stderr)
		}
		return r.stdout
	}
	refused := func(t *testing.T, code int, want []string, id, secret string, args ...string) {
		t.Helper()
		r := e.run(t, id, secret, append(args, "--log-level", "debug")...)
		secretsIn(t, r)
		for _, w := range want {
			if r.code != code || !strings.Contains(r.stderr, w) {
				t.Errorf("iotctl %s as %s: exit %d stderr %q; want %d and %q", strings.Join(args, " "), id, r.code, r.stderr, code, w)
			}
		}
	}

	// The Data Contributor does everything, on HTTPS and on AMQP.
	ok(t, writerID, writerSecret, "hub", "device", "create", "--device-id", "d1")
	if out := ok(t, writerID, writerSecret, "hub", "device", "show", "d1", "-o", "json"); !strings.Contains(out, `"d1"`) {
		t.Errorf("device show: %q", out)
	}
	ok(t, writerID, writerSecret, "hub", "twin", "update", "d1", "--desired", `{"interval": 5}`)
	ok(t, writerID, writerSecret, "hub", "query", "SELECT * FROM devices")
	ok(t, writerID, writerSecret, "hub", "c2d", "send", "-d", "d1", "--data", "hello")
	ok(t, writerID, writerSecret, "hub", "c2d", "purge", "-d", "d1")
	// Authorized: the hub answers that the device is offline.
	refused(t, cmdutil.ExitOffline, []string{"404103"}, writerID, writerSecret, "method", "invoke", "-d", "d1", "--name", "m", "--payload", "1")

	// The Data Reader reads, and is told which role it lacks.
	ok(t, readerID, readerSecret, "hub", "device", "show", "d1")
	ok(t, readerID, readerSecret, "hub", "twin", "show", "d1")
	refused(t, cmdutil.ExitAuth, []string{"devices/write", `"IoT Hub Registry Contributor"`}, readerID, readerSecret, "hub", "device", "create", "--device-id", "d2")
	refused(t, cmdutil.ExitAuth, []string{"twins/write", `"IoT Hub Twin Contributor"`}, readerID, readerSecret, "hub", "twin", "update", "d1", "--desired", `{"a": 1}`)
	refused(t, cmdutil.ExitAuth, []string{"directMethods/invoke/action", `"IoT Hub Data Contributor"`}, readerID, readerSecret, "method", "invoke", "-d", "d1", "--name", "m", "--payload", "1")
	refused(t, cmdutil.ExitAuth, []string{"cloudToDeviceMessages/send/action", `"IoT Hub Data Contributor"`}, readerID, readerSecret, "hub", "c2d", "send", "-d", "d1", "--data", "x")

	// The registry commands beside create and show, and file
	// notifications (a JWT put on $cbs for their AMQP link).
	ok(t, writerID, writerSecret, "hub", "device", "create", "--device-id", "d3")
	if out := ok(t, writerID, writerSecret, "hub", "device", "list", "-o", "json"); !strings.Contains(out, `"d3"`) {
		t.Errorf("device list: %q; want d3", out)
	}
	ok(t, writerID, writerSecret, "hub", "device", "update", "d3", "--status", "disabled")
	if d, err := e.entraHub.Registry().Device("d3"); err != nil || d.Status != "disabled" {
		t.Errorf("after device update --status disabled: %+v, %v", d, err)
	}
	ok(t, writerID, writerSecret, "hub", "device", "renew-key", "d3", "--key-type", "primary")
	ok(t, writerID, writerSecret, "hub", "file-notifications", "--timeout", "1s")
	ok(t, readerID, readerSecret, "hub", "file-notifications", "--timeout", "1s")
	refused(t, cmdutil.ExitAuth, []string{"devices/delete", `"IoT Hub Registry Contributor"`}, readerID, readerSecret, "hub", "device", "delete", "d3")
	refused(t, cmdutil.ExitAuth, []string{"devices/write"}, readerID, readerSecret, "hub", "device", "renew-key", "d3", "--key-type", "primary")
	refused(t, cmdutil.ExitAuth, []string{"cloudToDeviceMessages/queue/purge/action", `"IoT Hub Data Contributor"`}, readerID, readerSecret, "hub", "c2d", "purge", "-d", "d1")
	refused(t, cmdutil.ExitAuth, []string{"feedback/action", `"IoT Hub Data Contributor"`}, readerID, readerSecret, "hub", "feedback", "--timeout", "1s")
	// An identity with no role on the hub signs in, and is told which
	// role file notifications need.
	refused(t, cmdutil.ExitAuth, []string{"fileUpload/notifications/action", `"IoT Hub Data Reader"`}, deniedID, deniedSecret, "hub", "file-notifications", "--timeout", "1s")
	ok(t, writerID, writerSecret, "hub", "device", "delete", "d3")
	if _, err := e.entraHub.Registry().Device("d3"); err == nil {
		t.Error("d3 is still in the registry after device delete")
	}

	// A wrong secret is a refused sign-in.
	refused(t, cmdutil.ExitAuth, []string{"sign-in"}, writerID, "not-the-secret", "hub", "device", "show", "d1")
}

func TestEntraHubRefusesSAS(t *testing.T) {
	t.Parallel() // no t.Setenv: see signIn
	e := startEntraEnv(t)
	cs, err := e.entraHub.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	r := runEnv(t, map[string]string{"IOTCTL_CONNECTION_STRING": cs, "IOTCTL_CA_FILE": e.caFile}, "hub", "device", "list")
	if r.code != cmdutil.ExitAuth || !strings.Contains(r.stderr, "local (shared access key) authentication is disabled") {
		t.Errorf("device list with a policy key: exit %d stderr %q; want 4 and local authentication disabled", r.code, r.stderr)
	}
}

func TestHubNameThroughResourceManager(t *testing.T) {
	t.Parallel() // no t.Setenv: see signIn
	e := startEntraEnv(t)
	sub := "--subscription=" + e.subscription
	// Login: the host comes from Resource Manager, searched across the
	// subscription.
	r := e.run(t, writerID, writerSecret, "hub", "device", "list", "--host", "", "--hub-name", "entrahub", sub)
	if r.code != 0 {
		t.Fatalf("device list --hub-name entrahub: exit %d stderr %q", r.code, r.stderr)
	}
	// Key: the policy's key comes from Resource Manager too.
	r = e.run(t, writerID, writerSecret, "hub", "device", "create", "--device-id", "k1", "--auth-type", "key", "--hub-name", "keyhub", "--resource-group", "rg-key", sub)
	if r.code != 0 {
		t.Fatalf("device create --auth-type key --hub-name keyhub: exit %d stderr %q", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, connstr.MustParse(e.keyHub.cs).SharedAccessKey) {
		t.Error("the policy key read from Resource Manager was printed")
	}
	if _, err := e.keyHub.hub.Registry().Device("k1"); err != nil {
		t.Errorf("k1 was not made on keyhub: %v", err)
	}
	// --policy-name reads another policy's key, with that policy's
	// rights; a policy the hub does not have is named in the error.
	rcs, err := e.keyHub.hub.ServiceConnectionString("registryRead")
	if err != nil {
		t.Fatal(err)
	}
	keyArgs := []string{"--auth-type", "key", "--hub-name", "keyhub", "--resource-group", "rg-key", sub, "--policy-name", "registryRead"}
	if r = e.run(t, writerID, writerSecret, append([]string{"hub", "device", "show", "k1"}, keyArgs...)...); r.code != 0 {
		t.Errorf("device show --policy-name registryRead: exit %d stderr %q", r.code, r.stderr)
	}
	if r = e.run(t, writerID, writerSecret, append([]string{"hub", "device", "create", "--device-id", "k2"}, keyArgs...)...); r.code != cmdutil.ExitAuth {
		t.Errorf("device create --policy-name registryRead: exit %d stderr %q; want 4, the policy may not write", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, connstr.MustParse(rcs).SharedAccessKey) {
		t.Error("the registryRead key read from Resource Manager was printed")
	}
	r = e.run(t, writerID, writerSecret, "hub", "device", "show", "k1", "--auth-type", "key", "--hub-name", "keyhub", "--resource-group", "rg-key", sub, "--policy-name", "nosuchpolicy")
	if r.code != cmdutil.ExitNotFound || !strings.Contains(r.stderr, "policy nosuchpolicy") {
		t.Errorf("--policy-name nosuchpolicy: exit %d stderr %q; want 5 naming the policy", r.code, r.stderr)
	}
	// 404 and 403 are clear errors.
	r = e.run(t, writerID, writerSecret, "hub", "device", "list", "--host", "", "--hub-name", "nohub", sub)
	if r.code != cmdutil.ExitNotFound || !strings.Contains(r.stderr, "find IoT hub nohub") || !strings.Contains(r.stderr, "az iot hub list") {
		t.Errorf("--hub-name nohub: exit %d stderr %q; want 5 naming the hub", r.code, r.stderr)
	}
	r = e.run(t, writerID, writerSecret, "hub", "device", "list", "--host", "", "--hub-name", "keyhub", "--resource-group", "rg-nope", sub)
	if r.code != cmdutil.ExitNotFound {
		t.Errorf("--hub-name keyhub in another group: exit %d stderr %q; want 5", r.code, r.stderr)
	}
	r = e.run(t, deniedID, deniedSecret, "hub", "device", "list", "--host", "", "--hub-name", "entrahub", sub)
	if r.code != cmdutil.ExitAuth || !strings.Contains(r.stderr, "AuthorizationFailed") || !strings.Contains(r.stderr, "Reader role") {
		t.Errorf("--hub-name refused by Resource Manager: exit %d stderr %q; want 4 naming the role", r.code, r.stderr)
	}
	r = e.run(t, writerID, writerSecret, "hub", "device", "list", "--host", "", "--hub-name", "entrahub")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "--subscription") {
		t.Errorf("--hub-name without a subscription: exit %d stderr %q; want 3", r.code, r.stderr)
	}
}

// TestEntraMonitor reads telemetry with --auth-type login as Azure
// allows it: the Event Hub-compatible endpoint takes only shared keys
// (articles/iot-hub/authenticate-authorize-azure-ad.md), so the signed-in
// identity reads the policy's key from Resource Manager, as az iot hub
// monitor-events does; without the listkeys permission it exits 4 naming
// it, and with --host alone it says what to pass instead.
func TestEntraMonitor(t *testing.T) {
	t.Parallel() // no t.Setenv: see signIn
	e := startEntraEnv(t)
	if _, err := e.entraHub.Telemetry().Append(telemetry.Event{DeviceID: "d1", Message: &message.Message{Body: []byte(`{"t": 21}`)}}); err != nil {
		t.Fatal(err)
	}
	sub := "--subscription=" + e.subscription
	r := e.run(t, writerID, writerSecret, "hub", "monitor", "--host", "", "--hub-name", "entrahub", sub,
		"--from", "start", "--count", "1", "--timeout", "30s", "-o", "json", "--log-level", "debug")
	if r.code != 0 || !strings.Contains(r.stdout, `"deviceId":"d1"`) || !strings.Contains(r.stdout, `"body":{"t":21}`) {
		t.Fatalf("monitor --auth-type login --hub-name entrahub: exit %d stdout %q stderr %q; want the event of d1", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{writerSecret, "eyJ", connstr.MustParse(mustEventHubCS(t, e)).SharedAccessKey} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("monitor output holds a secret, token or key (%.3s...): stdout %q stderr %q", s, r.stdout, r.stderr)
		}
	}
	// --auth-type key with --hub-name reads the endpoint Resource Manager
	// names with the key, though the hub refuses keys on its service side.
	r = e.run(t, writerID, writerSecret, "hub", "monitor", "--auth-type", "key", "--host", "", "--hub-name", "entrahub", sub,
		"--from", "start", "--count", "1", "--timeout", "30s", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"deviceId":"d1"`) {
		t.Errorf("monitor --auth-type key --hub-name entrahub: exit %d stdout %q stderr %q; want the event of d1", r.code, r.stdout, r.stderr)
	}
	// An identity that may not list keys is told which action it lacks.
	r = e.run(t, armReaderID, armReaderSecret, "hub", "monitor", "--host", "", "--hub-name", "entrahub", sub, "--timeout", "30s")
	if r.code != cmdutil.ExitAuth || !strings.Contains(r.stderr, "listkeys/action") || !strings.Contains(r.stderr, "Contributor") {
		t.Errorf("monitor without listkeys: exit %d stderr %q; want 4 naming listkeys/action and the role", r.code, r.stderr)
	}
	// --host alone: the endpoint takes no Entra ID token.
	r = e.run(t, writerID, writerSecret, "hub", "monitor", "--timeout", "30s")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "only shared access keys") || !strings.Contains(r.stderr, "--hub-name") {
		t.Errorf("monitor --auth-type login --host: exit %d stderr %q; want 3 saying to pass --hub-name", r.code, r.stderr)
	}
}

func mustEventHubCS(t *testing.T, e *entraEnv) string {
	t.Helper()
	cs, err := e.entraHub.EventHubConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// staticSource gives one token.
type staticSource struct{ tok service.Token }

func (s staticSource) Token(context.Context) (service.Token, error) { return s.tok, nil }

// signIn gives f the environment of iotctl signed in as the client id
// without the process's: AZURE_* in f.Getenv, and a client secret
// credential (what DefaultAzureCredential makes of AZURE_CLIENT_SECRET)
// that reads no process variable. A test that signs in this way may
// run in parallel.
func (e *entraEnv) signIn(clientID, secret string) func(*cmdutil.Factory) {
	env := e.env(clientID, secret)
	return func(f *cmdutil.Factory) {
		f.Getenv = func(k string) string { return env[k] }
		f.NewCredential = func(o *azidentity.DefaultAzureCredentialOptions) (azcore.TokenCredential, error) {
			co := o.ClientOptions
			co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: env["AZURE_AUTHORITY_HOST"] + "/"}
			return azidentity.NewClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
				&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: o.DisableInstanceDiscovery})
		}
	}
}

// hub feedback, a long-running AMQP command, keeps its link across the
// expiry of its Entra ID token (the token endpoint issues 5-second
// tokens here, and the hub closes links whose token expired): the
// record of a message sent after the first token expired reaches it.
// It runs in parallel, as it mostly waits for that expiry.
func TestEntraFeedbackAcrossTokenExpiry(t *testing.T) {
	t.Parallel()
	e := startEntraEnv(t)
	// The first token is the command's: the test asks for none.
	late := make(chan struct{})
	var mu sync.Mutex
	var first time.Time
	e.cloud.TokenTTL = 5 * time.Second
	e.cloud.OnToken = func(exp time.Time) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case first.IsZero():
			first = exp
		case time.Now().After(first):
			select {
			case <-late:
			default:
				close(late)
			}
		}
	}
	got := make(chan *message.Message, 1)
	amqpDevice(t, &regEnv{hub: e.entraHub}, "d1", got)
	b := startIotctlFactory(t, false, e.signIn(writerID, writerSecret), "hub", "feedback", "--count", "1", "--timeout", "60s", "-o", "json")
	select {
	case <-late:
	case <-b.done:
		t.Fatalf("hub feedback ended while it waited past its first token's expiry: exit %d stderr %q", b.code, b.errOut.String())
	case <-time.After(40 * time.Second):
		t.Fatal("hub feedback asked for no token after its first one expired: it did not renew it")
	}
	svc, err := service.NewWithTokenSource(e.entraHub.HostName(), staticSource{service.Token{
		Value: "Bearer " + e.cloud.Issuer.Mint(t, writerID, auth.Audience, time.Hour), Expiry: time.Now().Add(time.Hour)}},
		&service.Options{CAFile: e.caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.SendC2D(ctx, "d1", "", &message.Message{MessageID: "late-1", Body: []byte("x"), Ack: "positive"}); err != nil {
		t.Fatal(err)
	}
	receiveC2D(t, got, "late-1")
	if code := b.wait(t, 30*time.Second); code != 0 || !strings.Contains(b.out.String(), "late-1") {
		t.Errorf("hub feedback across its token's expiry: exit %d stdout %q stderr %q; want the record of late-1", code, b.out.String(), b.errOut.String())
	}
}
