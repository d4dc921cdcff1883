package amqpfront

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
)

// Management request types (application property "type").
const (
	mgmtTypeEventHub  = "com.microsoft:eventhub"
	mgmtTypePartition = "com.microsoft:partition"
)

// serveManagement answers READ requests on the Event Hub's $management
// node, as Event Hubs does for its SDKs' getEventHubProperties and
// getPartitionProperties.
func (cs *conn) serveManagement(ctx context.Context, l *amqp1.Link) {
	cs.serveRequests(ctx, l, nodeManagement, cs.f.management)
}

// management answers one request. Its application properties are
// operation="READ", type (mgmtTypeEventHub or mgmtTypePartition), name
// (the Event Hub) and, for a partition, partition; security_token is
// ignored (the link was authorized with CBS). The reply's body is an
// amqp-value map with string keys:
//
//   - eventhub: name (string), created_at (timestamp), partition_count
//     (int), partition_ids (array of string), georeplication_factor
//     (int, 1: no geo-replication);
//   - partition: name, partition (strings), begin_sequence_number and
//     last_enqueued_sequence_number (long), last_enqueued_offset
//     (string), last_enqueued_time_utc and
//     runtime_info_retrieval_time_utc (timestamps), is_partition_empty
//     (boolean).
//
// These are the keys and types the Event Hubs SDKs read: Go
// (azeventhubs/v2 mgmt.go, which fails without georeplication_factor),
// .NET (Azure.Messaging.EventHubs AmqpManagement.cs and
// AmqpMessageConverter.cs, which casts begin_sequence_number to long
// and matches georeplication_factor as an int), Java
// (azure-messaging-eventhubs ManagementChannel.java and
// EventHubMessageSerializer.java), Python
// (azure-eventhub _client_base.py) and JavaScript (@azure/event-hubs
// managementClient.ts).
//
// An empty partition reports last_enqueued_sequence_number
// begin_sequence_number-1, offset "-1" and time 1970-01-01, as Event
// Hubs does for a new partition.
func (f *Front) management(req *amqp.Message) response {
	props := req.ApplicationProperties
	if op := str(props["operation"]); op != "READ" {
		return response{status: statusBadRequest, description: "unsupported $management operation " + quote(op) + "; only READ is"}
	}
	name := str(props["name"])
	if !strings.EqualFold(name, f.ehName) {
		return response{status: statusNotFound, description: "no event hub " + quote(name) + " here; this hub's is " + quote(f.ehName)}
	}
	switch typ := str(props["type"]); typ {
	case mgmtTypeEventHub:
		n := f.tel.Partitions()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = strconv.Itoa(i)
		}
		return response{status: statusOK, description: "OK", body: map[string]any{
			"name":            f.ehName,
			"created_at":      f.opts.CreatedAt.UTC(),
			"partition_count": int32(n),
			"partition_ids":   ids,
			// An int: .NET reads it with "int count when count > 1".
			"georeplication_factor": int32(1),
		}}
	case mgmtTypePartition:
		pid := str(props["partition"])
		i, err := strconv.Atoi(pid)
		if err != nil || i < 0 || i >= f.tel.Partitions() || strconv.Itoa(i) != pid {
			return response{status: statusNotFound, description: "no partition " + quote(pid) + " in event hub " + quote(f.ehName)}
		}
		info := f.tel.Info(i)
		offset, last := "-1", time.Unix(0, 0).UTC()
		if info.Count > 0 {
			offset, last = strconv.FormatInt(info.Last, 10), info.LastEnqueued.UTC()
		}
		return response{status: statusOK, description: "OK", body: map[string]any{
			"name":                            f.ehName,
			"partition":                       pid,
			"begin_sequence_number":           info.First,
			"last_enqueued_sequence_number":   info.Last,
			"last_enqueued_offset":            offset,
			"last_enqueued_time_utc":          last,
			"runtime_info_retrieval_time_utc": f.now().UTC(),
			"is_partition_empty":              info.Count == 0,
		}}
	default:
		return response{status: statusBadRequest, description: "unsupported $management type " + quote(typ)}
	}
}
