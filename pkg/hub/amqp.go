package hub

import (
	"errors"
	"io"
	"net"
	"strconv"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/amqpfront"
)

func (h *Hub) newAMQPFront() *amqpfront.Front {
	host, _, err := net.SplitHostPort(h.hostName)
	if err != nil {
		host = h.hostName
	}
	return amqpfront.New(h.reg, h.telemetry, &amqpfront.Options{
		HostNames:      h.hostSet,
		RedirectHost:   host,
		RedirectPort:   h.amqpPort(),
		ConsumerGroups: h.opts.ConsumerGroups,
		C2DEnqueued: func(deviceID, moduleID string) {
			h.meter.c2d(c2dEnqueued)
			h.C2DEnqueued(deviceID, moduleID)
		},
		DPS:              dpsProvisioner{h},
		Core:             h.core,
		X509:             h.amqpX509,
		Logger:           h.log.With("component", "amqp"),
		Now:              h.now,
		Entra:            h.opts.Entra,
		DisableLocalAuth: h.opts.DisableLocalAuth,
	})
}

// amqpX509 authenticates an AMQP device or module by the client
// certificate of its connection (amqpfront.Options.X509).
func (h *Hub) amqpX509(nc net.Conn, deviceID, moduleID string) error {
	if st, ok := tlsState(nc); !ok || len(st.PeerCertificates) == 0 {
		return amqpfront.ErrNoClientCertificate
	}
	return h.authX509(nc, deviceID, moduleID)
}

// amqpPort is the port AMQP clients reach the hub on: 5671 when it
// serves the standard ports, else its main port.
func (h *Hub) amqpPort() int {
	if h.opts.StandardPorts || len(h.addrs) == 0 {
		return amqpfront.DefaultRedirectPort
	}
	_, p, _ := net.SplitHostPort(h.addrs[0])
	n, err := strconv.Atoi(p)
	if err != nil {
		return amqpfront.DefaultRedirectPort
	}
	return n
}

// serveAMQP serves an AMQP connection until it ends or the hub stops.
func (h *Hub) serveAMQP(c net.Conn) {
	defer h.meter.conn("amqp")()
	err := h.front.Serve(h.ctx, c)
	if err != nil && !errors.Is(err, io.EOF) {
		msg := "amqp connection ended"
		if errors.Is(err, amqp1.ErrAuth) {
			msg = "amqp connection refused: sasl authentication failed"
		}
		h.log.Debug(msg, "remote", c.RemoteAddr().String(), "err", err)
	}
}

// EventHubConnectionString returns the connection string of the hub's
// Event Hub-compatible endpoint for a shared access policy (which needs
// ServiceConnect to read): "Endpoint=sb://{host}[:port]/;
// SharedAccessKeyName={policy};SharedAccessKey={key};EntityPath={name}",
// with the hub's host name (and port, unless it serves the standard
// ports) and the Event Hub name amqpfront.EventHubName gives. Event
// Hubs clients then connect with TLS to that port, which serves AMQP.
// It returns an error when the policy does not exist.
func (h *Hub) EventHubConnectionString(policy string) (string, error) {
	key, err := h.store.policyKey(policy)
	if err != nil {
		return "", err
	}
	cs := connstr.ConnectionString{
		Kind:                connstr.KindEventHub,
		HostName:            h.hostName,
		Endpoint:            "sb://" + h.hostName + "/",
		SharedAccessKeyName: policy,
		SharedAccessKey:     key,
		EntityPath:          amqpfront.EventHubName(h.hostName),
	}
	return cs.Format(), nil
}
