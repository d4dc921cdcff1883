package hub

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// httpDevice makes device-side HTTPS requests with the device's own
// SAS token.
type httpDevice struct {
	t   *testing.T
	h   *Hub
	c   *http.Client
	tok string
}

func newHTTPDevice(t *testing.T, h *Hub, cs *connstr.ConnectionString) *httpDevice {
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, cs.DeviceID), mustKey(t, cs), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}}
	t.Cleanup(c.CloseIdleConnections)
	return &httpDevice{t: t, h: h, c: c, tok: tok.Encode()}
}

// do sends a request and returns the status, headers and body.
func (d *httpDevice) do(method, path string, hdr http.Header, body string) (int, http.Header, string) {
	d.t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(method, "https://"+d.h.Addrs()[0]+path+sep+"api-version=2021-04-12", strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", d.tok)
	}
	res, err := d.c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// A device sends one message and a batch over HTTPS; the telemetry log
// holds them with their system and application properties.
func TestDeviceHTTPSTelemetry(t *testing.T) {
	h := startHub(t)
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	hdr := http.Header{}
	message.EncodeHTTP(&message.Message{MessageID: "m1", ContentType: "application/json", Properties: map[string]string{"color": "red"}}, hdr)
	hdr.Set("iothub-to", "/devices/dev1/messages/events")
	if st, _, b := d.do("POST", "/devices/dev1/messages/events", hdr, `{"n":1}`); st != 204 {
		t.Fatalf("send: %d %s; want 204", st, b)
	}
	batch, err := message.EncodeHTTPBatch([]*message.Message{{Body: []byte("two"), Properties: map[string]string{"k": "v"}}, {Body: []byte("three"), MessageID: "m3"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, b := d.do("POST", "/devices/dev1/messages/events", http.Header{"Content-Type": {message.HTTPBatchContentType}}, string(batch)); st != 204 {
		t.Fatalf("batch: %d %s; want 204", st, b)
	}
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("dev1"), 0, 10)
	if len(evs) != 3 {
		t.Fatalf("the log holds %d events; want 3", len(evs))
	}
	m := evs[0].Message
	if string(m.Body) != `{"n":1}` || m.MessageID != "m1" || m.ContentType != "application/json" || m.Properties["color"] != "red" || m.To != "" || evs[0].AuthMethod != "sas" {
		t.Errorf("first message %+v (auth %s)", m, evs[0].AuthMethod)
	}
	if string(evs[1].Message.Body) != "two" || evs[1].Message.Properties["k"] != "v" || string(evs[2].Message.Body) != "three" || evs[2].Message.MessageID != "m3" {
		t.Errorf("batch messages %+v, %+v", evs[1].Message, evs[2].Message)
	}

	// Bad input: a token of another device, a batch over 256 KB, a
	// batch that is not JSON.
	other := newHTTPDevice(t, h, createDevice(t, h, "dev2"))
	if st, hd, _ := d.do("POST", "/devices/dev1/messages/events", http.Header{"Authorization": {other.tok}}, "x"); st != 401 || hd.Get("iothub-errorcode") != "IotHubUnauthorizedAccess" {
		t.Errorf("another device's token: %d %s; want 401 IotHubUnauthorizedAccess", st, hd.Get("iothub-errorcode"))
	}
	big := `[{"body":"` + strings.Repeat("A", message.MaxTelemetrySize) + `"}]`
	if st, hd, _ := d.do("POST", "/devices/dev1/messages/events", http.Header{"Content-Type": {message.HTTPBatchContentType}}, big); st != 413 || hd.Get("iothub-errorcode") != "MessageTooLarge" {
		t.Errorf("a batch over 256 KB: %d %s; want 413 MessageTooLarge", st, hd.Get("iothub-errorcode"))
	}
	if st, _, b := d.do("POST", "/devices/dev1/messages/events", http.Header{"Content-Type": {message.HTTPBatchContentType}}, "nope"); st != 400 || !strings.Contains(b, "JSON array") {
		t.Errorf("a batch that is not JSON: %d %s; want 400 naming the shape", st, b)
	}
	if n := len(mustRead(h, "dev1")); n != 3 {
		t.Errorf("refused requests stored messages: the log holds %d", n)
	}
}

func mustRead(h *Hub, id string) []string {
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf(id), 0, 100)
	var out []string
	for _, ev := range evs {
		out = append(out, string(ev.Message.Body))
	}
	return out
}

// A device polls C2D over HTTPS: 204 when the queue is empty, else the
// message with its lock token as a quoted ETag; complete, reject and
// abandon settle it with feedback; a stale lock token gets 412 and
// leaves the queue as it was.
func TestDeviceHTTPSC2D(t *testing.T) {
	h := startHub(t)
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	if st, _, _ := d.do("GET", "/devices/dev1/messages/deviceBound", nil, ""); st != 204 {
		t.Fatalf("empty queue: %d; want 204", st)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: id, Body: []byte("hello " + id), Ack: registry.AckFull,
			ContentType: "text/plain", Properties: map[string]string{"color": "red"}}); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(want string) string {
		t.Helper()
		st, hd, body := d.do("GET", "/devices/dev1/messages/devicebound?iothub-messagelocktimeout=30", nil, "")
		etag := hd.Get("ETag")
		if st != 200 || body != "hello "+want || hd.Get("iothub-messageid") != want || hd.Get("iothub-app-color") != "red" ||
			hd.Get("iothub-contenttype") != "text/plain" || hd.Get("iothub-to") != "/devices/dev1/messages/devicebound" ||
			len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
			t.Fatalf("receive: %d %q %v; want 200 with message %s", st, body, hd, want)
		}
		return strings.Trim(etag, `"`)
	}
	la := receive("a")
	if st, hd, _ := d.do("DELETE", "/devices/dev1/messages/deviceBound/not-a-lock", nil, ""); st != 412 || hd.Get("iothub-errorcode") != "DeviceMessageLockLost" {
		t.Errorf("unknown lock: %d %s; want 412 DeviceMessageLockLost", st, hd.Get("iothub-errorcode"))
	}
	if st, _, b := d.do("DELETE", "/devices/dev1/messages/deviceBound/"+la, http.Header{"If-Match": {`"` + la + `"`}}, ""); st != 204 {
		t.Fatalf("complete: %d %s", st, b)
	}
	lb := receive("b")
	if st, _, b := d.do("DELETE", "/devices/dev1/messages/deviceBound/"+lb+"?reject", nil, ""); st != 204 {
		t.Fatalf("reject: %d %s", st, b)
	}
	lc := receive("c")
	if st, _, b := d.do("POST", "/devices/dev1/messages/deviceBound/"+lc+"/abandon", nil, ""); st != 204 {
		t.Fatalf("abandon: %d %s", st, b)
	}
	if st, _, _ := d.do("DELETE", "/devices/dev1/messages/deviceBound/"+lc, nil, ""); st != 412 {
		t.Errorf("completing with an abandoned lock: %d; want 412", st)
	}
	_, hd, _ := d.do("GET", "/devices/dev1/messages/deviceBound", nil, "")
	if hd.Get("iothub-messageid") != "c" || hd.Get("iothub-deliverycount") != "2" {
		t.Errorf("after abandon: message %q delivery count %q; want c, 2", hd.Get("iothub-messageid"), hd.Get("iothub-deliverycount"))
	}
	if st, _, b := d.do("GET", "/devices/dev1/messages/deviceBound?iothub-messagelocktimeout=0", nil, ""); st != 400 || !strings.Contains(b, "iothub-messagelocktimeout") {
		t.Errorf("lock timeout 0: %d %s; want 400 naming the parameter", st, b)
	}
	fb, err := h.reg.TakeFeedback(10)
	if err != nil || fb == nil {
		t.Fatalf("feedback %v %v", fb, err)
	}
	got := map[string]string{}
	for _, r := range fb.Records {
		got[r.OriginalMessageID] = string(r.StatusCode)
	}
	if b, _ := json.Marshal(got); string(b) != `{"a":"Success","b":"Rejected"}` {
		t.Errorf("feedback %s; want a Success, b Rejected", b)
	}
}

// A lock asked for over HTTPS lasts as long as asked, by the hub's clock.
func TestDeviceHTTPSLockTimeout(t *testing.T) {
	var ahead atomic.Int64
	h := startHubAt(t, func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) })
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "a"}); err != nil {
		t.Fatal(err)
	}
	_, hd, _ := d.do("GET", "/devices/dev1/messages/deviceBound?iothub-messagelocktimeout=5", nil, "")
	lock := strings.Trim(hd.Get("ETag"), `"`)
	if st, _, _ := d.do("GET", "/devices/dev1/messages/deviceBound", nil, ""); st != 204 {
		t.Errorf("a locked message was handed out again: %d", st)
	}
	ahead.Store(int64(6 * time.Second))
	if st, _, _ := d.do("DELETE", "/devices/dev1/messages/deviceBound/"+lock, nil, ""); st != 412 {
		t.Errorf("completing after the 5 s lock expired: %d; want 412", st)
	}
}

// A module sends over HTTPS with its own token, on its own path only;
// an X.509 device sends with its client certificate and no token.
func TestDeviceHTTPSModuleAndX509(t *testing.T) {
	h := startHub(t)
	createDevice(t, h, "dev1")
	cs := createModule(t, h, "dev1", "mod1")
	tok, err := sas.Sign(sas.ModuleResource(cs.HostName, "dev1", "mod1"), mustKey(t, cs), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newHTTPDevice(t, h, createDevice(t, h, "unused"))
	d.tok = tok.Encode()
	if st, _, b := d.do("POST", "/devices/dev1/modules/mod1/messages/events", nil, "from the module"); st != 204 {
		t.Fatalf("module send: %d %s", st, b)
	}
	if st, _, _ := d.do("POST", "/devices/dev1/messages/events", nil, "as the device"); st != 401 {
		t.Errorf("a module token on the device's path: %d; want 401", st)
	}
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("dev1"), 0, 10)
	if len(evs) != 1 || evs[0].ModuleID != "mod1" || string(evs[0].Message.Body) != "from the module" {
		t.Fatalf("the log holds %+v; want the module's message only", evs)
	}

	cert := validCert(t, "cam1", nil)
	sha1Hex, _ := Thumbprints(cert.Leaf)
	createX509Device(t, h, "cam1", selfSignedAuth(sha1Hex, ""))
	tc := tlsFor(t, h)
	tc.Certificates = []tls.Certificate{cert}
	// No Authorization header: the client certificate speaks.
	xc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	t.Cleanup(xc.CloseIdleConnections)
	req, _ := http.NewRequest("POST", "https://"+h.Addrs()[0]+"/devices/cam1/messages/events?api-version=2021-04-12", strings.NewReader("by cert"))
	res, err := xc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("X.509 send: %d; want 204", res.StatusCode)
	}
	evs, _ = h.Telemetry().Read(h.Telemetry().PartitionOf("cam1"), 0, 10)
	var got []string
	for _, ev := range evs {
		if ev.DeviceID == "cam1" {
			got = append(got, string(ev.Message.Body)+"/"+ev.AuthMethod)
		}
	}
	if len(got) != 1 || got[0] != "by cert/x509" {
		t.Errorf("the log holds %q for cam1; want by cert/x509", got)
	}
	req, _ = http.NewRequest("POST", "https://"+h.Addrs()[0]+"/devices/dev1/messages/events?api-version=2021-04-12", strings.NewReader("not mine"))
	res, err = xc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("cam1's certificate on dev1's path: %d; want 401", res.StatusCode)
	}
}
