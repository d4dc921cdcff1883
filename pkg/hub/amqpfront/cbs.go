package amqpfront

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/registry"
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
// authorizes, accepting the request as each official SDK sends it:
//
//   - type "servicebus.windows.net:sastoken" (Node, Java, C, Event
//     Hubs clients) or "azure-devices.net:sastoken" (.NET, whose
//     Microsoft.Azure.Amqp also adds an "expiration" timestamp; the
//     token's own se is what counts);
//   - name (the audience) the hub's host name (the Node service SDK),
//     "https://{host}" (Python), "amqps://{host}:5671/" (.NET),
//     "sb://{host}/{eventhub}[/...]" (Event Hubs clients), the token's
//     sr still URL-encoded (Node: azure-iot-amqp-base amqp.ts puts
//     the parsed token's sr as it is), or "{host}/devices/{id}" with a
//     module's token (Java: AmqpsCbsSenderLinkHandler.java names the
//     device even for modules);
//   - a policy's token (skn), or a device's or module's token signed
//     with its own key (no skn; it authorizes that identity's
//     resources, not the service's).
//
// The token's scope must cover the audience (or, Java's case, be a
// module of the device the audience names). Later links whose address
// lies under the narrower of the two are authorized by the token until
// it expires.
func (cs *conn) putToken(req *amqp.Message) response {
	props := req.ApplicationProperties
	if op := str(props["operation"]); op != "put-token" {
		return response{status: statusBadRequest, description: "unsupported $cbs operation " + quote(op) + "; only put-token is"}
	}
	audience := decodeAudience(str(props["name"]))
	token := bodyString(req)
	if typ := strings.ToLower(str(props["type"])); auth.IsBearer(token) || typ == "jwt" || strings.HasSuffix(typ, "bearer") {
		return cs.putBearer(token)
	}
	g, err := cs.f.tokenGrant(token, audience)
	if err != nil {
		cs.f.log.Debug("amqp put-token refused", "audience", audience, "err", err)
		return response{status: statusUnauthorized, description: err.Error()}
	}
	cs.addGrant(g)
	cs.f.log.Debug("amqp put-token accepted", "audience", audience, "policy", g.policy, "resource", g.key, "expiry", g.expiry)
	return response{status: statusOK, description: "OK"}
}

// bearerNodes are the service nodes an Entra ID principal may attach
// to, with the data action each needs (articles/iot-hub/
// authenticate-authorize-azure-ad.md).
var bearerNodes = []struct {
	path   string
	action auth.Action
}{
	{nodeC2D, auth.ActionC2DSend},
	{nodeFeedback, auth.ActionC2DFeedback},
	{nodeFileNotifications, auth.ActionFileNotifications},
}

// putBearer verifies a Microsoft Entra ID token put on $cbs, whatever
// its type and name say: the C# service SDK puts type "Bearer" for the
// audience amqps://{host}:5671/ (IotHubTokenCredentialProperties.cs),
// the Node one type "servicebus.windows.net:sastoken" for the name
// https://iothubs.azure.net/.default (service/src/amqp.ts); both send
// the body "Bearer {jwt}". The principal gets a grant for each node its
// roles allow, until the token expires; attaching to another node is
// refused with a message naming the roles that would allow it.
func (cs *conn) putBearer(token string) response {
	p, err := cs.f.auth.BearerPrincipal(token)
	if err != nil {
		cs.f.log.Debug("amqp put-token refused", "kind", "bearer", "err", err)
		return response{status: statusUnauthorized, description: err.Error()}
	}
	cs.mu.Lock()
	cs.principal = p
	cs.mu.Unlock()
	for _, n := range bearerNodes {
		if p.Allows(n.action) {
			segs := segments(n.path)
			cs.addGrant(&grant{key: strings.Join(segs, "/"), path: segs, policy: "entra:" + p.ID, rights: registry.ServiceConnect, expiry: p.Expiry})
		}
	}
	cs.f.log.Debug("amqp put-token accepted", "kind", "bearer", "principal", p.ID, "expiry", p.Expiry)
	return response{status: statusOK, description: "OK"}
}

// errEntraEventHub refuses a Microsoft Entra ID principal the built-in
// endpoint (messages/events, its redirect and the Event Hub-compatible
// nodes), as Azure IoT Hub does: "To access the built-in Event Hubs
// compatible endpoint, use the connection string (shared access key)
// method" (articles/iot-hub/authenticate-authorize-azure-ad.md); no
// IoT Hub data action covers it.
const errEntraEventHub = "the built-in Event Hub-compatible endpoint takes only shared access keys, not Microsoft Entra ID tokens: " +
	"read it with a shared access policy's key (its Event Hub-compatible connection string)"

// bearerRefusal explains why the connection's Entra ID principal, if
// it has one, may not attach to resource; "" when that is not why.
// Call with cs.mu held.
func (cs *conn) bearerRefusal(resource string) string {
	if cs.principal == nil {
		return ""
	}
	p := strings.ToLower(resource)
	first, _, _ := strings.Cut(p, "/")
	if p == nodeEvents || strings.HasPrefix(p, nodeEvents+"/") || first == strings.ToLower(cs.f.ehName) || p == nodeManagement {
		return errEntraEventHub
	}
	for _, n := range bearerNodes {
		if n.path == resource && !cs.principal.Allows(n.action) {
			return cs.principal.Refusal(n.action).Error()
		}
	}
	return ""
}

// tokenGrant verifies a token put for audience and returns what it
// authorizes.
func (f *Front) tokenGrant(token, audience string) (*grant, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return nil, &auth.Error{Reason: auth.ReasonMalformed}
	}
	if tok.KeyName == "" {
		return f.identityGrant(token, tok, audience)
	}
	policy, err := f.verifyToken(token, audience)
	if err != nil {
		return nil, err
	}
	path, err := grantPath(tok.Scope(), audience)
	if err != nil {
		return nil, err
	}
	return f.newGrant(policy, path, tok.Expiry())
}

// identityGrant verifies a token signed with a device's or module's own
// key, whose scope must be {host}/devices/{id}[/modules/{mid}], and
// returns the grant of that identity's resources (DeviceConnect).
func (f *Front) identityGrant(token string, tok *sas.Token, audience string) (*grant, error) {
	ids := strings.Split(audiencePath(tok.Scope()), "/")
	var deviceID, moduleID string
	switch {
	case len(ids) == 2 && strings.EqualFold(ids[0], "devices"):
		deviceID = ids[1]
	case len(ids) == 4 && strings.EqualFold(ids[0], "devices") && strings.EqualFold(ids[2], "modules"):
		deviceID, moduleID = ids[1], ids[3]
	default:
		return nil, &auth.Error{Reason: auth.ReasonNoPolicy,
			Detail: "a token without skn is a device's or module's: its sr must be {host}/devices/{id}[/modules/{moduleId}]"}
	}
	if err := f.auth.Device(token, deviceID, moduleID); err != nil {
		return nil, err
	}
	path, err := grantPath(tok.Scope(), audience)
	if err != nil {
		return nil, err
	}
	segs := segments(path)
	return &grant{key: strings.Join(segs, "/"), path: segs, rights: registry.DeviceConnect, expiry: tok.Expiry(), device: moduleID == ""}, nil
}

// grantPath checks a token's scope against the audience it was put for
// and returns the resource path the put authorizes: the audience's
// when the scope covers it, and the scope's when the audience names a
// device and the token is one of its modules' (Java's put-token).
func grantPath(scope, audience string) (string, error) {
	if audience == "" || sas.Covers(scope, audience) {
		if audience == "" {
			audience = scope
		}
		return audiencePath(audience), nil
	}
	a, s := segments(audiencePath(audience)), segments(audiencePath(scope))
	if sas.Covers(audience, scope) && len(a) == 2 && a[0] == "devices" && len(s) == 4 && s[2] == "modules" {
		return audiencePath(scope), nil
	}
	return "", errors.New("the token's scope does not cover the audience " + audience)
}

// decodeAudience undoes the URL encoding of a put-token name that is a
// token's sr as it was sent (Node); other names come back unchanged.
func decodeAudience(name string) string {
	if !strings.Contains(name, "%") {
		return name
	}
	if d, err := url.PathUnescape(name); err == nil {
		return d
	}
	return name
}

func quote(s string) string { return "\"" + s + "\"" }
