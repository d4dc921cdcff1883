package amqpfront

import (
	"context"
	"strings"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/sas"
)

// CBS status codes, sent as an AMQP int (int32) in status-code.
const (
	statusOK           int32 = 200
	statusBadRequest   int32 = 400
	statusUnauthorized int32 = 401
	statusNotFound     int32 = 404
)

// serveCBS answers put-token requests on $cbs (claims-based security,
// as Azure Service Bus defines it): the application properties
// operation="put-token", type="servicebus.windows.net:sastoken" and
// name={audience}, and the token as an amqp-value string.
func (cs *conn) serveCBS(ctx context.Context, l *amqp1.Link) {
	cs.serveRequests(ctx, l, nodeCBS, cs.putToken)
}

// putToken verifies a SAS token put on $cbs and records what it
// authorizes. The audience may be the hub's host name (the Node
// service SDK), "https://{host}" (the Python one) or
// "sb://{host}/{eventhub}[/...]" (Event Hubs clients); the token's
// scope must cover it. Later links whose address lies under the
// audience's path are authorized by the token until it expires.
func (cs *conn) putToken(req *amqp.Message) response {
	props := req.ApplicationProperties
	if op := str(props["operation"]); op != "put-token" {
		return response{status: statusBadRequest, description: "unsupported $cbs operation " + quote(op) + "; only put-token is"}
	}
	if typ := str(props["type"]); typ == "jwt" || strings.HasSuffix(typ, "bearer") {
		return response{status: statusUnauthorized, description: "token type " + typ + " is not supported by this hub; put a SAS token"}
	}
	audience := str(props["name"])
	token := bodyString(req)
	policy, err := cs.f.verifyToken(token, audience)
	if err != nil {
		cs.f.log.Debug("amqp put-token refused", "audience", audience, "err", err)
		return response{status: statusUnauthorized, description: err.Error()}
	}
	tok, err := sas.Parse(token)
	if err != nil {
		return response{status: statusUnauthorized, description: "malformed token"}
	}
	if audience == "" {
		audience = tok.Scope()
	}
	if !sas.Covers(tok.Scope(), audience) {
		return response{status: statusUnauthorized, description: "the token's scope does not cover the audience " + audience}
	}
	g, err := cs.f.newGrant(policy, audiencePath(audience), tok.Expiry())
	if err != nil {
		return response{status: statusUnauthorized, description: err.Error()}
	}
	cs.addGrant(g)
	cs.f.log.Debug("amqp put-token accepted", "audience", audience, "policy", policy, "expiry", tok.Expiry())
	return response{status: statusOK, description: "OK"}
}

func quote(s string) string { return "\"" + s + "\"" }
