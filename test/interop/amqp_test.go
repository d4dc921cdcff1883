package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// nodeJSON runs a Node script that prints JSON lines and returns them,
// the last one being {"result": ...} or {"error": ...}.
func (e *env) nodeJSON(script, cs, op string, args any) (lines []map[string]any, result json.RawMessage, nerr *jsError) {
	e.t.Helper()
	b, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := e.nodeCmd(ctx, script, cs, op, string(b)).Output()
	if err != nil {
		e.t.Fatalf("node %s %s %s: %v\nstdout: %s\nstderr: %s", script, op, b, err, out, stderrOf(err))
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *jsError        `json:"error"`
	}
	if err := json.Unmarshal(lastLine(out), &res); err != nil {
		e.t.Fatalf("node %s %s printed %q: %v", script, op, out, err)
	}
	return lines, res.Result, res.Error
}

// jsError is how the scripts report a failure: the error's class name,
// its code (Event Hubs' MessagingError) and message, and for
// azure-iothub the transport error it wrapped.
type jsError struct {
	Name    string   `json:"name"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Inner   *jsError `json:"inner"`
}

// is reports whether the error, or the one it wraps, has class name.
func (e *jsError) is(name string) bool {
	return e != nil && (e.Name == name || e.Inner.is(name))
}

// The official azure-iothub Client.send delivers a C2D message, with
// its properties, over the hub's AMQP endpoint to the official Node
// device over MQTT; the device completes it, and with ack "full"
// Client.getFeedbackReceiver gets the Success record.
func TestNodeServiceC2DAndFeedback(t *testing.T) {
	e := newEnv(t)
	d := e.startDevice(e.createDevice("node-dev"))

	_, res, nerr := e.nodeJSON("c2d.js", e.cs, "send", map[string]any{
		"deviceId": "node-dev", "messageId": "3f2a1e44-5b6c-4d7e-8f90-a1b2c3d4e5f6", "correlationId": "corr-7",
		"body": "hello over amqp", "ack": "full", "expiryMinutes": 10,
		"properties": map[string]string{"color": "red", "sp ace": "a/b&c"},
	})
	if nerr != nil {
		t.Fatalf("azure-iothub Client.send (AMQP) failed: %s", jsonOf(nerr))
	}
	t.Logf("Client.send result: %s", res)
	ev := d.waitFor(t, "c2d")
	props, _ := ev["properties"].(map[string]any)
	if ev["messageId"] != "3f2a1e44-5b6c-4d7e-8f90-a1b2c3d4e5f6" || ev["body"] != "hello over amqp" || props["color"] != "red" || props["sp ace"] != "a/b&c" {
		t.Errorf("the Node device (MQTT) got C2D %v; want the message the Node service sent over AMQP", ev)
	}

	_, res, nerr = e.nodeJSON("c2d.js", e.cs, "feedback", map[string]any{"timeoutSeconds": 30})
	if nerr != nil {
		t.Fatalf("azure-iothub getFeedbackReceiver got no feedback: %s", jsonOf(nerr))
	}
	var fb struct {
		ContentType string `json:"contentType"`
		UserID      string `json:"userId"`
		Records     []struct {
			OriginalMessageID string `json:"originalMessageId"`
			StatusCode        string `json:"statusCode"`
			Description       string `json:"description"`
			DeviceID          string `json:"deviceId"`
			EnqueuedTimeUTC   string `json:"enqueuedTimeUtc"`
		} `json:"records"`
	}
	if err := json.Unmarshal(res, &fb); err != nil {
		t.Fatalf("feedback result %s: %v", res, err)
	}
	if fb.ContentType != "application/vnd.microsoft.iothub.feedback.json" || fb.UserID != "iothub" || len(fb.Records) != 1 {
		t.Fatalf("the Node feedback receiver got %s; want one record, IoT Hub's content type and user id iothub", res)
	}
	r := fb.Records[0]
	if r.OriginalMessageID != "3f2a1e44-5b6c-4d7e-8f90-a1b2c3d4e5f6" || r.StatusCode != "Success" || r.DeviceID != "node-dev" || r.EnqueuedTimeUTC == "" {
		t.Errorf("the Node feedback receiver got record %+v; want Success for the message the device completed", r)
	}
	if n, _ := e.hub.Registry().PendingFeedback(); n != 0 {
		t.Errorf("hub side: %d feedback records left after the Node receiver completed the batch", n)
	}
}

// A service connection string with a wrong key makes Client.send fail
// with UnauthorizedError (CBS answers 401; the SDK reports it as
// "AMQP Transport: Could not connect" wrapping the UnauthorizedError in
// err.amqpError), and an unknown device with DeviceNotFoundError.
func TestNodeServiceC2DRefused(t *testing.T) {
	e := newEnv(t)
	e.createDevice("node-dev")
	wrong := connstr.MustParse(e.cs)
	wrong.SharedAccessKey = "d3Jvbmcga2V5IHdyb25nIGtleQ=="
	_, _, nerr := e.nodeJSON("c2d.js", wrong.Format(), "send", map[string]any{"deviceId": "node-dev", "body": "x"})
	if !nerr.is("UnauthorizedError") {
		t.Errorf("azure-iothub Client.send with a wrong key: %s; want UnauthorizedError", jsonOf(nerr))
	}
	_, _, nerr = e.nodeJSON("c2d.js", e.cs, "send", map[string]any{"deviceId": "nobody", "body": "x"})
	if !nerr.is("DeviceNotFoundError") {
		t.Errorf("azure-iothub Client.send to an unknown device: %s; want DeviceNotFoundError", jsonOf(nerr))
	}
}

// The official EventHubConsumerClient reads, from the earliest
// position, the telemetry the official Node device sent over MQTT, with
// its properties and IoT Hub's annotations. It connects with TLS to
// Endpoint=sb://127.0.0.N/ (port 5671) and trusts the hub's CA through
// NODE_EXTRA_CA_CERTS; UseDevelopmentEmulator is not set, as that
// would mean plain TCP.
func TestEventHubsConsumerReadsTelemetry(t *testing.T) {
	e := newEnv(t)
	ehcs, err := e.hub.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ehcs, "Endpoint=sb://"+e.ip+"/;") || !strings.HasSuffix(ehcs, ";EntityPath=iothub") {
		t.Fatalf("EventHubConnectionString = %q", connstr.MustParse(ehcs).String())
	}
	cs := e.createDevice("node-dev")
	if evs := e.runDevice(cs, "telemetry", "6"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the Node device did not send its telemetry: %v", evs)
	}

	_, res, nerr := e.nodeJSON("eventhubs.js", ehcs, "props", nil)
	if nerr != nil {
		t.Fatalf("EventHubConsumerClient properties: %s (%s): %s", nerr.Name, nerr.Code, nerr.Message)
	}
	var props struct {
		Hub struct {
			Name         string   `json:"name"`
			PartitionIDs []string `json:"partitionIds"`
			CreatedOn    string   `json:"createdOn"`
		} `json:"hub"`
		Partitions []struct {
			PartitionID                string `json:"partitionId"`
			LastEnqueuedSequenceNumber int64  `json:"lastEnqueuedSequenceNumber"`
			IsEmpty                    bool   `json:"isEmpty"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(res, &props); err != nil {
		t.Fatalf("properties %s: %v", res, err)
	}
	part := e.hub.Telemetry().PartitionOf("node-dev")
	if props.Hub.Name != "iothub" || len(props.Hub.PartitionIDs) != 4 || props.Hub.CreatedOn == "" || len(props.Partitions) != 4 ||
		props.Partitions[part].LastEnqueuedSequenceNumber != 5 || props.Partitions[part].IsEmpty {
		t.Errorf("EventHubConsumerClient read properties %s; want event hub iothub, 4 partitions, partition %d holding sequence numbers 0-5", res, part)
	}

	lines, _, nerr := e.nodeJSON("eventhubs.js", ehcs, "read", map[string]any{"count": 6, "timeoutSeconds": 60})
	if nerr != nil {
		t.Fatalf("EventHubConsumerClient subscribe: %s (%s): %s", nerr.Name, nerr.Code, nerr.Message)
	}
	var got []map[string]any
	for _, l := range lines {
		if l["event"] == "event" {
			got = append(got, l)
		}
	}
	if len(got) != 6 {
		t.Fatalf("EventHubConsumerClient received %d events; want the 6 the Node device sent: %v", len(got), lines)
	}
	for i, ev := range got {
		body, _ := ev["body"].(map[string]any)
		props, _ := ev["properties"].(map[string]any)
		sys, _ := ev["systemProperties"].(map[string]any)
		wantAlert := map[bool]string{true: "true", false: "false"}[i%2 == 1]
		if body["n"] != float64(i) || ev["messageId"] != "node-"+string(rune('0'+i)) || ev["contentType"] != "application/json" ||
			props["temperatureAlert"] != wantAlert || props["sp ace"] != "a/b&c" || ev["sequenceNumber"] != float64(i) ||
			ev["offset"] != string(rune('0'+i)) || ev["partitionId"] != string(rune('0'+part)) || ev["enqueuedTimeUtc"] == nil {
			t.Errorf("event %d as EventHubConsumerClient saw it: %v", i, ev)
		}
		if sys["iothub-connection-device-id"] != "node-dev" || sys["iothub-message-source"] != "Telemetry" ||
			sys["iothub-connection-auth-method"] != `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}` ||
			sys["iothub-connection-auth-generation-id"] == nil || sys["iothub-enqueuedtime"] == nil {
			t.Errorf("event %d systemProperties as EventHubConsumerClient saw them: %v", i, sys)
		}
	}
}

// EventHubConsumerClient reads every event in a consumer group made
// with --consumer-group as in $Default, and a group the hub does not
// have is an error the SDK names.
func TestEventHubsConsumerGroups(t *testing.T) {
	e := newEnvWith(t, hub.Options{ConsumerGroups: []string{"dashboards"}})
	ehcs, err := e.hub.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	cs := e.createDevice("node-dev")
	if evs := e.runDevice(cs, "telemetry", "3"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the Node device did not send its telemetry: %v", evs)
	}
	for _, group := range []string{"dashboards", "$Default"} {
		lines, res, nerr := e.nodeJSON("eventhubs.js", ehcs, "read", map[string]any{"count": 3, "timeoutSeconds": 60, "consumerGroup": group})
		if nerr != nil {
			t.Fatalf("EventHubConsumerClient(%q): %s (%s): %s", group, nerr.Name, nerr.Code, nerr.Message)
		}
		events := 0
		for _, l := range lines {
			if l["event"] == "event" {
				events++
			}
		}
		if events != 3 || !strings.Contains(string(res), `"count":3`) {
			t.Errorf("EventHubConsumerClient(%q) read %d events (%s); want 3", group, events, res)
		}
	}
	_, _, nerr := e.nodeJSON("eventhubs.js", ehcs, "read", map[string]any{"count": 1, "timeoutSeconds": 30, "consumerGroup": "nosuchgroup", "maxRetries": 0})
	if nerr == nil || !strings.Contains(nerr.Message, "nosuchgroup") {
		t.Errorf("EventHubConsumerClient with an unknown consumer group: %s; want an error naming it", jsonOf(nerr))
	}
}

// A wrong key makes the Event Hubs client fail with an authorization
// error (CBS answers 401, which @azure/event-hubs maps to code
// UnauthorizedError; it retries that, so the test turns retries off).
func TestEventHubsConsumerWrongKey(t *testing.T) {
	e := newEnv(t)
	ehcs, err := e.hub.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	wrong := connstr.MustParse(ehcs)
	wrong.SharedAccessKey = "d3Jvbmcga2V5IHdyb25nIGtleQ=="
	_, _, nerr := e.nodeJSON("eventhubs.js", wrong.Format(), "props", map[string]any{"maxRetries": 0})
	if nerr == nil || nerr.Code != "UnauthorizedError" {
		t.Errorf("EventHubConsumerClient with a wrong key: %s; want code UnauthorizedError", jsonOf(nerr))
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A go-amqp client does what amenzhinsky/iothub does to read telemetry:
// SASL PLAIN with a policy token at the hub, a receiver at
// messages/events/ that is redirected, then SASL PLAIN with the policy
// name and key at the redirect's host and port, and a receiver on
// {eventhub}/ConsumerGroups/$Default/Partitions/{n}.
func TestGoAMQPRedirectToEventHub(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("node-dev")
	if evs := e.runDevice(cs, "telemetry", "1"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the Node device did not send its telemetry: %v", evs)
	}
	svc := connstr.MustParse(e.cs)
	key, _ := svc.Key()
	tok, err := sas.Sign(svc.HostName, key, &sas.SignOptions{KeyName: svc.SharedAccessKeyName, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(e.hub.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(host string, sasl amqp.SASLType) *amqp.Session {
		t.Helper()
		c, err := amqp.Dial(ctx, "amqps://"+host, &amqp.ConnOptions{SASLType: sasl, TLSConfig: &tls.Config{RootCAs: pool, ServerName: e.ip}})
		if err != nil {
			t.Fatalf("go-amqp dialing %s: %v", host, err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := dial(e.ip+":5671", amqp.SASLTypePlain("iothubowner@sas.root.iothub", tok.Encode()))
	// IoT Hub refuses the attach (no source, no target) with the
	// redirect, which go-amqp returns from NewReceiver.
	_, err = s.NewReceiver(ctx, "messages/events/", nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondLinkRedirect {
		t.Fatalf("go-amqp receiver at messages/events/ got %v (%T); want *amqp.Error amqp:link:redirect from NewReceiver", err, err)
	}
	info := ae.Info
	addr, _ := info["address"].(string)
	if info["hostname"] != e.ip || info["port"] != int32(5671) || addr != "amqps://"+e.ip+":5671/iothub/" {
		t.Fatalf("redirect info %v; want hostname %s, port 5671, address amqps://%s:5671/iothub/", info, e.ip, e.ip)
	}
	name := addr[strings.Index(addr, ":5671/")+6 : len(addr)-1]

	s = dial(info["hostname"].(string)+":5671", amqp.SASLTypePlain(svc.SharedAccessKeyName, svc.SharedAccessKey))
	part := e.hub.Telemetry().PartitionOf("node-dev")
	r, err := s.NewReceiver(ctx, fmt.Sprintf("%s/ConsumerGroups/$Default/Partitions/%d", name, part),
		&amqp.ReceiverOptions{Filters: []amqp.LinkFilter{amqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '-1'")}})
	if err != nil {
		t.Fatalf("go-amqp partition receiver at the redirected endpoint: %v", err)
	}
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("go-amqp partition receiver: %v", err)
	}
	_ = r.AcceptMessage(ctx, m)
	if m.Annotations["iothub-connection-device-id"] != "node-dev" || m.Properties == nil || m.Properties.MessageID != "node-0" {
		t.Errorf("go-amqp received %+v %+v; want the Node device's first message", m.Annotations, m.Properties)
	}
}
