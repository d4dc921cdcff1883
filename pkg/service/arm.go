package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/iothub/armiothub"

	"github.com/iotctl/iotctl/pkg/connstr"
)

// ErrSignIn is wrapped by a failure to get a Microsoft Entra ID token:
// no credential could sign in (no `az login`, no environment, workload
// or managed identity) or the sign-in was refused. It matches
// ErrUnauthorized too.
var ErrSignIn = errors.New("service: microsoft entra id sign-in failed")

// SignInError is a failure to get a Microsoft Entra ID token.
type SignInError struct {
	// Scope is what the token was asked for.
	Scope string
	// Err is the credential's error.
	Err error
}

func (e *SignInError) Error() string {
	return fmt.Sprintf("service: microsoft entra id sign-in for %s failed: %v", e.Scope, e.Err)
}

// Unwrap returns the credential's error.
func (e *SignInError) Unwrap() error { return e.Err }

// Is matches ErrSignIn and ErrUnauthorized.
func (e *SignInError) Is(target error) bool { return target == ErrSignIn || target == ErrUnauthorized }

// ARMOptions configure the Azure Resource Manager look-up of a hub.
type ARMOptions struct {
	// Subscription is the subscription id. Required.
	Subscription string
	// ResourceGroup narrows the search; "" searches the whole
	// subscription.
	ResourceGroup string
	// Endpoint is Resource Manager's URL; its tokens are asked for
	// Endpoint + "/.default". Default: Azure's public cloud,
	// https://management.azure.com.
	Endpoint string
	// Transport sends the requests (a proxy, extra CAs). Default:
	// azcore's.
	Transport policy.Transporter
}

// Hub is an IoT hub as Resource Manager describes it.
type Hub struct {
	Name, ResourceGroup, Subscription string
	// HostName is the hub's host name (properties.hostName).
	HostName string
	// EventHubEndpoint and EventHubPath are the built-in Event
	// Hub-compatible endpoint ("sb://{namespace}.servicebus.windows.net/")
	// and its name (properties.eventHubEndpoints.events); "" when
	// Resource Manager did not say.
	EventHubEndpoint, EventHubPath string
}

// ARMError is Resource Manager's refusal of a look-up. It matches
// ErrNotFound (404) and ErrUnauthorized (401, 403).
type ARMError struct {
	// Op says what was asked: "find IoT hub myhub", "list the keys of
	// myhub".
	Op string
	// StatusCode is the HTTP status; Code Resource Manager's error
	// code ("ResourceNotFound", "AuthorizationFailed").
	StatusCode int
	Code       string
	// Hint says what to do.
	Hint string
}

func (e *ARMError) Error() string {
	s := fmt.Sprintf("service: azure resource manager: %s: %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

// Is matches ErrNotFound and ErrUnauthorized.
func (e *ARMError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

// armResult turns an armiothub failure into an *ARMError (a refusal),
// a *SignInError (no token), or returns it as it is.
func armResult(op string, err error, hint403 string) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e := &ARMError{Op: op, StatusCode: re.StatusCode, Code: re.ErrorCode}
		switch re.StatusCode {
		case http.StatusNotFound:
			e.Hint = "check the name, --resource-group and --subscription (az iot hub list -o table)"
		case http.StatusForbidden:
			e.Hint = hint403
		case http.StatusUnauthorized:
			e.Hint = "the token was refused: sign in again (az login)"
		}
		return e
	}
	var se *SignInError
	if errors.As(err, &se) {
		return se
	}
	return fmt.Errorf("service: azure resource manager: %s: %w", op, err)
}

// signInCredential marks its credential's failures as *SignInError,
// so that they are told apart from Resource Manager's answers.
type signInCredential struct{ cred azcore.TokenCredential }

func (c signInCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.cred.GetToken(ctx, o)
	if err != nil && ctx.Err() == nil {
		return t, &SignInError{Scope: strings.Join(o.Scopes, " "), Err: err}
	}
	return t, err
}

func (o ARMOptions) client(cred azcore.TokenCredential) (*armiothub.ResourceClient, error) {
	if o.Subscription == "" {
		return nil, errors.New("service: azure resource manager: no subscription id: give the hub's subscription (az account show --query id -o tsv)")
	}
	co := &arm.ClientOptions{}
	if o.Endpoint != "" {
		ep := strings.TrimSuffix(o.Endpoint, "/")
		co.Cloud = cloud.Configuration{Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: ep, Audience: ep},
		}}
		if strings.EqualFold(ep, "https://management.azure.com") {
			co.Cloud = cloud.AzurePublic
		}
	}
	if o.Transport != nil {
		co.Transport = o.Transport
	}
	return armiothub.NewResourceClient(o.Subscription, signInCredential{cred}, co)
}

// FindHub looks the hub name up in Resource Manager with cred: in
// o.ResourceGroup, or else across the subscription. Errors are
// *ARMError (not found, refused), *SignInError, or say why the look-up
// could not be made.
func FindHub(ctx context.Context, cred azcore.TokenCredential, name string, o ARMOptions) (*Hub, error) {
	c, err := o.client(cred)
	if err != nil {
		return nil, err
	}
	op := "find IoT hub " + name
	hint := "the signed-in identity may not read the hub: assign it the Reader role on the hub or its resource group (az role assignment create --role Reader --assignee ID --scope HUB_RESOURCE_ID)"
	if o.ResourceGroup != "" {
		res, err := c.Get(ctx, o.ResourceGroup, name, nil)
		if err != nil {
			return nil, armResult(op, err, hint)
		}
		return hubOf(res.Description, o.Subscription)
	}
	pager := c.NewListBySubscriptionPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, armResult(op, err, hint)
		}
		for _, d := range page.Value {
			if d != nil && d.Name != nil && strings.EqualFold(*d.Name, name) {
				return hubOf(*d, o.Subscription)
			}
		}
	}
	return nil, &ARMError{Op: op, StatusCode: http.StatusNotFound, Code: "ResourceNotFound",
		Hint: "no IoT hub of that name in subscription " + o.Subscription + " (az iot hub list -o table)"}
}

// hubOf reads a hub's description.
func hubOf(d armiothub.Description, subscription string) (*Hub, error) {
	h := &Hub{Subscription: subscription}
	if d.Name != nil {
		h.Name = *d.Name
	}
	if d.ID != nil {
		// /subscriptions/{s}/resourceGroups/{rg}/providers/...
		segs := strings.Split(strings.Trim(*d.ID, "/"), "/")
		for i := 0; i+1 < len(segs); i++ {
			if strings.EqualFold(segs[i], "resourceGroups") {
				h.ResourceGroup = segs[i+1]
			}
		}
	}
	if d.Properties == nil || d.Properties.HostName == nil || *d.Properties.HostName == "" {
		return nil, fmt.Errorf("service: azure resource manager: IoT hub %s has no host name", h.Name)
	}
	h.HostName = *d.Properties.HostName
	if ev := d.Properties.EventHubEndpoints["events"]; ev != nil && ev.Endpoint != nil && ev.Path != nil {
		h.EventHubEndpoint, h.EventHubPath = *ev.Endpoint, *ev.Path
	}
	return h, nil
}

// listKeysHint is what a refused listkeys asks for.
const listKeysHint = "reading a policy's key needs the control-plane action Microsoft.Devices/IotHubs/listkeys/action, which the Contributor and Owner roles have and the IoT Hub data roles do not"

// ConnectionString fetches the primary key of the hub's shared access
// policy (POST .../IotHubKeys/{policy}/listkeys, as `az iot hub
// connection-string show` does) and returns the service connection
// string. The caller needs Microsoft.Devices/IotHubs/listkeys/action.
func (h *Hub) ConnectionString(ctx context.Context, cred azcore.TokenCredential, policyName string, o ARMOptions) (*connstr.ConnectionString, error) {
	key, err := h.policyKey(ctx, cred, policyName, o, listKeysHint+"; or use --auth-type login with a data-plane role")
	if err != nil {
		return nil, err
	}
	return &connstr.ConnectionString{Kind: connstr.KindService, HostName: h.HostName, SharedAccessKeyName: policyName, SharedAccessKey: key}, nil
}

// EventHubConnectionString fetches the primary key of the hub's shared
// access policy as ConnectionString does, and returns the connection
// string of the hub's built-in Event Hub-compatible endpoint with it
// (Endpoint={EventHubEndpoint};SharedAccessKeyName=...;SharedAccessKey=...;
// EntityPath={EventHubPath}), as `az iot hub monitor-events` reads
// telemetry after finding the hub (azure-iot-cli-extension
// azext_iot/monitor/builders/hub_target_builder.py). That endpoint
// takes only shared access keys, not Microsoft Entra ID tokens
// (articles/iot-hub/authenticate-authorize-azure-ad.md: "To access the
// built-in Event Hubs compatible endpoint, use the connection string
// (shared access key) method"). It returns ErrRedirect wrapped when
// Resource Manager named no Event Hub-compatible endpoint.
func (h *Hub) EventHubConnectionString(ctx context.Context, cred azcore.TokenCredential, policyName string, o ARMOptions) (*connstr.ConnectionString, error) {
	if h.EventHubEndpoint == "" || h.EventHubPath == "" {
		return nil, fmt.Errorf("%w: azure resource manager names no Event Hub-compatible endpoint (properties.eventHubEndpoints.events) for %s", ErrRedirect, h.Name)
	}
	key, err := h.policyKey(ctx, cred, policyName, o,
		listKeysHint+"; the Event Hub-compatible endpoint takes only shared access keys, so IoT Hub data roles cannot read it (or pass --event-hub-connection-string)")
	if err != nil {
		return nil, err
	}
	ep := h.EventHubEndpoint
	if !strings.Contains(ep, "://") {
		ep = "sb://" + ep
	}
	cs, err := connstr.Parse(connstr.KeyEndpoint + "=" + ep + ";" + connstr.KeySharedAccessKeyName + "=" + policyName + ";" +
		connstr.KeySharedAccessKey + "=" + key + ";" + connstr.KeyEntityPath + "=" + h.EventHubPath)
	if err != nil {
		return nil, fmt.Errorf("service: azure resource manager: the Event Hub-compatible endpoint of %s: %w", h.Name, err)
	}
	return cs, nil
}

// policyKey fetches the primary key of the policy; hint403 says what a
// refusal asks for.
func (h *Hub) policyKey(ctx context.Context, cred azcore.TokenCredential, policyName string, o ARMOptions, hint403 string) (string, error) {
	o.Subscription = h.Subscription
	c, err := o.client(cred)
	if err != nil {
		return "", err
	}
	res, err := c.GetKeysForKeyName(ctx, h.ResourceGroup, h.Name, policyName, nil)
	if err != nil {
		return "", armResult("list the keys of "+h.Name+"'s policy "+policyName, err, hint403)
	}
	if res.PrimaryKey == nil || *res.PrimaryKey == "" {
		return "", fmt.Errorf("service: azure resource manager: policy %s of %s has no primary key", policyName, h.Name)
	}
	return *res.PrimaryKey, nil
}
