package amqpfront

import (
	"errors"
	"strings"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// ErrNoClientCertificate is what Options.X509 returns for a connection
// whose TLS handshake carried no client certificate.
var ErrNoClientCertificate = errors.New("amqpfront: no client certificate")

// X.509 devices over AMQP. None of the device SDKs sends credentials in
// the AMQP layer when it authenticates with a certificate, and none puts
// a token on $cbs:
//
//   - Node (azure-iot-device-amqp, device/transport/amqp/src/amqp.ts):
//     with an x509 authentication provider it connects with the
//     certificate and key in the TLS options and skips the CBS
//     put-token; rhea adds no SASL layer without a user name.
//   - Java (device/transport/amqps/AmqpsIotHubConnection.java,
//     createReactor): "x509 authentication does not use SASL, so
//     disable it" (setEnableSaslByDefault(false)), and it opens no CBS
//     session for an X.509 client.
//   - .NET (AmqpIotConnector.cs): no SASL provider at all; the client
//     certificate goes into the TLS settings (AmqpIotTransport).
//
// So the hub authorizes a device link it has no token for by the TLS
// client certificate of the connection, as it does for MQTT, and keeps
// that as a grant of the identity for the rest of the connection.

// authorizeX509 authorizes l, a link of id that no token covers, by the
// connection's client certificate. It returns nil when the certificate
// is id's, else the refusal: refused, when the connection has no client
// certificate (or the hub takes none), or one naming the reason the
// certificate is not id's.
func (cs *conn) authorizeX509(l *amqp1.Link, id core.Identity, refused *amqp1.Error) *amqp1.Error {
	check := cs.f.opts.X509
	if check == nil || cs.nc == nil {
		return refused
	}
	if err := check(cs.nc, id.DeviceID, id.ModuleID); err != nil {
		if errors.Is(err, ErrNoClientCertificate) {
			refused.Description += ", or connect with its X.509 certificate"
			return refused
		}
		cs.f.log.Debug("amqp x509 refused", "device", id.DeviceID, "module", id.ModuleID, "err", err)
		return &amqp1.Error{Condition: amqp1.ErrCondUnauthorizedAccess,
			Description: "the client certificate of this connection does not authenticate " + identityPath(id) + ": " +
				strings.TrimPrefix(err.Error(), "x509: unauthorized: ")}
	}
	// The grant covers the identity's part of the link's address as the
	// device spelled it (devices/{id}[/modules/{mid}]), so that its later
	// links compare equal segment by segment.
	resource := nodePath(l.Address())
	segs := segments(resource)
	n := 2
	if id.ModuleID != "" {
		n = 4
	}
	if len(segs) < n {
		return refused
	}
	segs = segs[:n]
	cs.addGrant(&grant{key: strings.Join(segs, "/"), path: segs, policy: "x509", rights: registry.DeviceConnect,
		device: id.ModuleID == "", x509: true})
	return cs.authorizeLink(l, resource, registry.DeviceConnect)
}
