package hub

import (
	"net"

	"github.com/iotctl/iotctl/pkg/hub/amqpfront"
	"github.com/iotctl/iotctl/pkg/hub/dps"
)

// dpsProvisioner answers DPS's device API over AMQP (amqpfront's
// Provisioner) with the hub's DPS.
type dpsProvisioner struct{ h *Hub }

// credentials are a provisioning client's token, or the client
// certificate of its TLS connection when token is "".
func (p dpsProvisioner) credentials(nc net.Conn, token string) dps.Credentials {
	if token != "" {
		return dps.Credentials{Token: token}
	}
	if nc != nil {
		if st, ok := tlsState(nc); ok {
			return dps.Credentials{Certificates: st.PeerCertificates}
		}
	}
	return dps.Credentials{}
}

func (p dpsProvisioner) Authenticate(nc net.Conn, idScope, registrationID, token string) error {
	cred := p.credentials(nc, token)
	return p.h.dps.Authenticate(idScope, registrationID, &cred)
}

func (p dpsProvisioner) Request(nc net.Conn, idScope, registrationID, token, operationID string, body []byte) amqpfront.ProvisioningReply {
	var rep *dps.Reply
	if operationID == "" {
		rep = p.h.dps.RegisterReply(idScope, registrationID, body, p.credentials(nc, token))
	} else {
		rep = p.h.dps.OperationReply(idScope, registrationID, operationID, p.credentials(nc, token))
	}
	pauseBeforeDPSReply(p.h.ctx.Done())
	out := amqpfront.ProvisioningReply{Status: rep.Status, RetryAfter: rep.RetryAfter, Body: rep.Body}
	if rep.Err != nil {
		out.Message = rep.Err.Message
	}
	return out
}
