package interop

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub"
)

// sendPythonTelemetry has the official Python device send n messages
// over MQTT, message i with body {"n": i}, id py-i and the properties
// temperatureAlert (true for odd i) and "sp ace" = "a/b&c".
func sendPythonTelemetry(t *testing.T, e *env, py, id string, n int) {
	t.Helper()
	d := startPython(t, py, "device.py", e.createDevice(id), e.hub.CAFile(), "mqtt")
	d.waitFor("ready")
	for i := range n {
		d.send(map[string]any{
			"op": "send", "body": fmt.Sprintf(`{"n": %d}`, i), "messageId": fmt.Sprintf("py-%d", i),
			"contentType": "application/json", "contentEncoding": "utf-8",
			"properties": map[string]string{"temperatureAlert": strconv.FormatBool(i%2 == 1), "sp ace": "a/b&c"},
		})
		d.waitFor("sent")
	}
}

// The official Python EventHubConsumerClient (azure-eventhub, whose
// AMQP stack is pure Python) reads the hub's Event Hub-compatible
// endpoint from the connection string Hub.EventHubConnectionString
// gives, trusting the hub's CA with connection_verify: the event hub's
// and every partition's properties, then the events the official Python
// device sent, from the earliest and from a sequence number, with their
// application properties and IoT Hub's system properties.
func TestPythonEventHubsConsumer(t *testing.T) {
	e, py := newPythonEnv(t, hub.Options{})
	ehcs, err := e.hub.EventHubConnectionString("service")
	if err != nil {
		t.Fatal(err)
	}
	sendPythonTelemetry(t, e, py, "py-dev", 5)
	part := e.hub.Telemetry().PartitionOf("py-dev")

	_, res, perr := pyLines(t, py, "eventhubs.py", ehcs, e.hub.CAFile(), "props")
	if perr != nil {
		t.Fatalf("azure-eventhub get_eventhub_properties/get_partition_properties failed: %v", perr)
	}
	h, _ := res["hub"].(map[string]any)
	ids, _ := h["partition_ids"].([]any)
	if h["eventhub_name"] != "iothub" || len(ids) != 4 || h["created_at"] == nil {
		t.Errorf("get_eventhub_properties() = %v; want eventhub_name iothub, 4 partition ids and created_at", h)
	}
	parts, _ := res["partitions"].([]any)
	if len(parts) != 4 {
		t.Fatalf("get_partition_properties answered for %d partitions; want 4: %v", len(parts), res)
	}
	for i, p := range parts {
		pp, _ := p.(map[string]any)
		wantLast, wantEmpty := float64(-1), true
		if i == part {
			wantLast, wantEmpty = 4, false
		}
		if pp["id"] != strconv.Itoa(i) || pp["eventhub_name"] != "iothub" || pp["last_enqueued_sequence_number"] != wantLast ||
			pp["is_empty"] != wantEmpty || pp["beginning_sequence_number"] != float64(0) {
			t.Errorf("get_partition_properties(%q) = %v; want last sequence number %v, is_empty %v", strconv.Itoa(i), pp, wantLast, wantEmpty)
		}
	}

	read := func(args map[string]any) []map[string]any {
		t.Helper()
		if _, all := args["batch"]; !all {
			args["partitionId"] = strconv.Itoa(part)
		}
		args["timeoutSeconds"] = 60
		lines, res, perr := pyLines(t, py, "eventhubs.py", ehcs, e.hub.CAFile(), "read", jsonOf(args))
		if perr != nil {
			t.Fatalf("azure-eventhub receive %v failed: %v", args, perr)
		}
		var evs []map[string]any
		for _, l := range lines {
			if l["event"] == "event" {
				evs = append(evs, l)
			}
		}
		if res["count"] != float64(len(evs)) {
			t.Errorf("receive %v: the script counted %v events, printed %d", args, res["count"], len(evs))
		}
		return evs
	}

	evs := read(map[string]any{"count": 5})
	if len(evs) != 5 {
		t.Fatalf("azure-eventhub received %d events from the earliest; want the 5 the device sent: %v", len(evs), evs)
	}
	t.Logf("get_partition_properties(%q) = %v", strconv.Itoa(part), parts[part])
	t.Logf("the first event as azure-eventhub saw it: %v", evs[0])
	for i, ev := range evs {
		props, _ := ev["properties"].(map[string]any)
		sys, _ := ev["systemProperties"].(map[string]any)
		if ev["body"] != fmt.Sprintf(`{"n": %d}`, i) || ev["messageId"] != fmt.Sprintf("py-%d", i) || ev["contentType"] != "application/json" ||
			ev["sequenceNumber"] != float64(i) || ev["offset"] != strconv.Itoa(i) || ev["partitionId"] != strconv.Itoa(part) || ev["enqueuedTime"] == nil {
			t.Errorf("event %d as azure-eventhub saw it: %v", i, ev)
		}
		if props["temperatureAlert"] != strconv.FormatBool(i%2 == 1) || props["sp ace"] != "a/b&c" {
			t.Errorf("event %d application properties as azure-eventhub saw them: %v", i, props)
		}
		if sys["iothub-connection-device-id"] != "py-dev" || sys["iothub-message-source"] != "Telemetry" ||
			sys["iothub-connection-auth-method"] != `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}` ||
			sys["iothub-connection-auth-generation-id"] == nil || sys["iothub-enqueuedtime"] == nil || sys["content-type"] != "application/json" {
			t.Errorf("event %d system properties as azure-eventhub saw them: %v", i, sys)
		}
	}

	// As Microsoft's Python quickstart for reading device-to-cloud
	// messages reads (Azure-Samples/azure-iot-samples-python,
	// iot-hub/Quickstarts/read-d2c-messages/
	// read_device_to_cloud_messages_sync.py): receive_batch on every
	// partition, in consumer group "$default".
	if evs := read(map[string]any{"count": 5, "consumerGroup": "$default", "batch": true}); len(evs) != 5 || evs[0]["messageId"] != "py-0" || evs[4]["messageId"] != "py-4" {
		t.Errorf("azure-eventhub receive_batch on every partition in consumer group $default received %v; want the 5 events", evs)
	}

	// AMQP over WebSocket, as behind a proxy that lets only 443 out.
	if evs := read(map[string]any{"count": 5, "websocket": true}); len(evs) != 5 || evs[4]["messageId"] != "py-4" {
		t.Errorf("azure-eventhub over WebSocket received %v; want the 5 events", evs)
	}

	for _, c := range []struct {
		inclusive bool
		want      []float64
	}{{false, []float64{3, 4}}, {true, []float64{2, 3, 4}}} {
		evs := read(map[string]any{"count": len(c.want), "sequenceNumber": 2, "inclusive": c.inclusive})
		var got []float64
		for _, ev := range evs {
			got = append(got, ev["sequenceNumber"].(float64))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("azure-eventhub from sequence number 2 (inclusive %v) received sequence numbers %v; want %v", c.inclusive, got, c.want)
		}
	}
}
