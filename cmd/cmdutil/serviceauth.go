package cmdutil

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/service"
)

// Keys of the service commands' sign-in (flags, config keys,
// IOTCTL_AUTH_TYPE, IOTCTL_HUB_NAME, ...).
const (
	KeyAuthType      = "auth-type"
	KeyHost          = "host"
	KeyHubName       = "hub-name"
	KeyResourceGroup = "resource-group"
	KeySubscription  = "subscription"
	KeyPolicyName    = "policy-name"
	KeyARMEndpoint   = "arm-endpoint"
)

// The values of --auth-type.
const (
	AuthTypeKey   = "key"
	AuthTypeLogin = "login"
)

// ServiceAuthHelp is the part of a service command's help that says how
// it signs in.
const ServiceAuthHelp = `Sign-in: --auth-type key (the default) uses a shared access policy: the service
connection string (--connection-string, IOTCTL_CONNECTION_STRING, config), or with
--hub-name the key of --policy-name (default iothubowner) read from Azure Resource
Manager. --auth-type login signs in with Microsoft Entra ID (DefaultAzureCredential:
environment, workload identity, managed identity, az login, azd auth login) and
needs an IoT Hub data-plane role; name the hub with --host, --hub-name or a
connection string's HostName. --hub-name takes --resource-group and
--subscription (default AZURE_SUBSCRIPTION_ID).`

// AddServiceAuth adds the sign-in flags to a service command and ends
// its help with ServiceAuthHelp and need, what --auth-type login needs
// for that command (LoginNeeds says it for data actions).
func AddServiceAuth(c *cobra.Command, need string) {
	AddServiceAuthFlags(c.Flags())
	if c.Long == "" {
		// --help shows Long instead of Short when there is one.
		c.Long = c.Short + "."
	}
	c.Long = strings.TrimRight(c.Long, "\n") + "\n\n" + ServiceAuthHelp + "\n\n" + need
}

// LoginNeeds says which data actions a command needs with --auth-type
// login and the built-in roles that grant them, the narrowest first, as
// the hub checks them (auth.RolesAllowing), wrapped for --help.
func LoginNeeds(actions ...auth.Action) string {
	var parts []string
	for _, a := range actions {
		roles, verb := auth.RolesAllowing(a), " grants"
		if len(roles) > 1 {
			roles, verb = append(roles[:len(roles)-2:len(roles)-2], roles[len(roles)-2]+" or "+roles[len(roles)-1]), " grant"
		}
		parts = append(parts, strings.TrimPrefix(string(a), "Microsoft.Devices/IotHubs/")+", which "+strings.Join(roles, ", ")+verb)
	}
	return wrap("Role: with --auth-type login the signed-in identity needs the data action "+strings.Join(parts, "; and ")+
		" (az role assignment create --role ROLE --assignee ID --scope HUB_RESOURCE_ID).", 84)
}

// wrap breaks s into lines of at most width characters at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 && n+1+len(w) > width {
			b.WriteString("\n")
			n = 0
		} else if i > 0 {
			b.WriteString(" ")
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// AddServiceAuthFlags adds the sign-in flags of the service commands:
// --auth-type, --host, --hub-name, --resource-group, --subscription,
// --policy-name and --arm-endpoint.
func AddServiceAuthFlags(fl *pflag.FlagSet) {
	fl.String(KeyAuthType, AuthTypeKey, "how to sign in: key (shared access policy) or login (Microsoft Entra ID)")
	fl.String(KeyHost, "", "the hub's host name, with --auth-type login and no connection string")
	fl.String(KeyHubName, "", "find the hub by its name in Azure Resource Manager")
	fl.String(KeyResourceGroup, "", "the resource group of --hub-name (default: search the subscription)")
	fl.String(KeySubscription, "", "the subscription of --hub-name (default: AZURE_SUBSCRIPTION_ID)")
	fl.String(KeyPolicyName, "iothubowner", "the shared access policy whose key --hub-name reads with --auth-type key")
	fl.String(KeyARMEndpoint, "", "Azure Resource Manager URL for --hub-name (default: https://management.azure.com)")
}

// ServiceClient returns a service client as the configuration says:
// with --auth-type key, from the service connection string or the key
// --hub-name reads from Resource Manager; with --auth-type login, for
// --host, --hub-name or the connection string's HostName, with a
// Microsoft Entra ID credential. opts nil means ServiceOptions.
func (f *Factory) ServiceClient(ctx context.Context, opts *service.Options) (*service.Client, error) {
	if opts == nil {
		var err error
		if opts, err = f.ServiceOptions(); err != nil {
			return nil, err
		}
	}
	authType := strings.ToLower(f.V.GetString(KeyAuthType))
	hubName := f.V.GetString(KeyHubName)
	switch authType {
	case "", AuthTypeKey:
		if f.V.GetString(KeyConnectionString) == "" && hubName != "" {
			cred, hub, err := f.findHub(ctx, opts, hubName)
			if err != nil {
				return nil, err
			}
			policy := f.V.GetString(KeyPolicyName)
			if policy == "" {
				policy = "iothubowner"
			}
			cs, err := hub.ConnectionString(ctx, cred, policy, f.armOptions(opts))
			if err != nil {
				return nil, err
			}
			return newServiceClient(cs, opts)
		}
		cs, err := f.ServiceConnectionString()
		if err != nil {
			return nil, err
		}
		return newServiceClient(cs, opts)
	case AuthTypeLogin:
		cred, err := f.credential(opts)
		if err != nil {
			return nil, err
		}
		host := f.V.GetString(KeyHost)
		switch {
		case host != "":
		case hubName != "":
			_, hub, err := f.findHub(ctx, opts, hubName)
			if err != nil {
				return nil, err
			}
			host = hub.HostName
		case f.V.GetString(KeyConnectionString) != "":
			cs, err := connstr.Parse(f.V.GetString(KeyConnectionString))
			if err != nil {
				return nil, err
			}
			host = cs.HostName
		default:
			return nil, Usagef("--auth-type login needs the hub: pass --host myhub.azure-devices.net or --hub-name myhub (or a connection string whose HostName names it)")
		}
		c, err := service.NewWithTokenSource(host, service.NewEntraSource(cred), opts)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--host: %w", err)}
		}
		return c, nil
	}
	return nil, Usagef("--auth-type %q: use key (a shared access policy) or login (Microsoft Entra ID)", authType)
}

// ResourceManagerEventHub reports whether the built-in Event
// Hub-compatible endpoint is found through Resource Manager (see
// EventHubFromResourceManager): with --auth-type login, or with
// --hub-name and no connection string.
func (f *Factory) ResourceManagerEventHub() bool {
	return strings.EqualFold(f.V.GetString(KeyAuthType), AuthTypeLogin) ||
		f.V.GetString(KeyHubName) != "" && f.V.GetString(KeyConnectionString) == ""
}

// EventHubFromResourceManager returns the connection string of the
// built-in Event Hub-compatible endpoint of the hub --hub-name names:
// the endpoint and name Resource Manager describes, with the key of
// --policy-name read from there too, as `az iot hub monitor-events`
// finds them after `az login` (so it works on a hub whose service side
// refuses shared keys). That endpoint takes only shared access keys, not
// Microsoft Entra ID tokens (articles/iot-hub/authenticate-authorize-azure-ad.md),
// so Entra ID signs in to Resource Manager only. Without --hub-name it
// is a usage error that says so and names the ways out.
func (f *Factory) EventHubFromResourceManager(ctx context.Context, opts *service.Options) (*connstr.ConnectionString, error) {
	name := f.V.GetString(KeyHubName)
	if name == "" {
		return nil, Usagef("the Event Hub-compatible endpoint takes only shared access keys, not Microsoft Entra ID tokens, so --auth-type login " +
			"cannot read it with --host alone: pass --hub-name myhub (iotctl reads the key of --policy-name from Azure Resource Manager, " +
			"which needs Microsoft.Devices/IotHubs/listkeys/action, as az iot hub monitor-events does), " +
			"or --event-hub-connection-string (IoT hub → Built-in endpoints in the portal)")
	}
	cred, hub, err := f.findHub(ctx, opts, name)
	if err != nil {
		return nil, err
	}
	return hub.EventHubConnectionString(ctx, cred, cmp.Or(f.V.GetString(KeyPolicyName), "iothubowner"), f.armOptions(opts))
}

func newServiceClient(cs *connstr.ConnectionString, opts *service.Options) (*service.Client, error) {
	c, err := service.New(cs, opts)
	if err != nil {
		return nil, Usagef("%v", err)
	}
	return c, nil
}

// findHub signs in and looks --hub-name up in Resource Manager.
func (f *Factory) findHub(ctx context.Context, opts *service.Options, name string) (azcore.TokenCredential, *service.Hub, error) {
	cred, err := f.credential(opts)
	if err != nil {
		return nil, nil, err
	}
	ao := f.armOptions(opts)
	if ao.Subscription == "" {
		return nil, nil, Usagef("--hub-name %s needs the hub's subscription: pass --subscription ID or set AZURE_SUBSCRIPTION_ID (az account show --query id -o tsv)", name)
	}
	hub, err := service.FindHub(ctx, cred, name, ao)
	if err != nil {
		return nil, nil, err
	}
	return cred, hub, nil
}

// armOptions are the Resource Manager options of the configuration.
func (f *Factory) armOptions(opts *service.Options) service.ARMOptions {
	sub := f.V.GetString(KeySubscription)
	if sub == "" {
		sub = f.getenv("AZURE_SUBSCRIPTION_ID")
	}
	o := service.ARMOptions{Subscription: sub, ResourceGroup: f.V.GetString(KeyResourceGroup), Endpoint: f.V.GetString(KeyARMEndpoint)}
	if hc, err := azureHTTPClient(opts); err == nil {
		o.Transport = hc
	}
	return o
}

// credential is azidentity's DefaultAzureCredential (f.NewCredential), made once, whose
// requests trust --ca-file besides the system's CAs and go through
// --proxy (else HTTPS_PROXY). With AZURE_AUTHORITY_HOST set (a
// sovereign or private cloud) it skips MSAL's instance discovery,
// which asks login.microsoftonline.com.
func (f *Factory) credential(opts *service.Options) (azcore.TokenCredential, error) {
	if f.cred != nil {
		return f.cred, nil
	}
	hc, err := azureHTTPClient(opts)
	if err != nil {
		return nil, err
	}
	co := &azidentity.DefaultAzureCredentialOptions{DisableInstanceDiscovery: f.getenv("AZURE_AUTHORITY_HOST") != ""}
	co.Transport = hc
	newCred := f.NewCredential
	if newCred == nil {
		newCred = defaultCredential
	}
	cred, err := newCred(co)
	if err != nil {
		return nil, &service.SignInError{Scope: service.EntraScope, Err: err}
	}
	f.cred = cred
	return cred, nil
}

// azureHTTPClient is the HTTP client of the sign-in and of Resource
// Manager.
func azureHTTPClient(opts *service.Options) (*http.Client, error) {
	tlsConf, err := service.TLSConfig(opts.CAFile, opts.RootCAs)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	if opts.Proxy != "" {
		u, err := proxy.ParseURL(opts.Proxy)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("--proxy: %w", err)}
		}
		tr.Proxy = func(*http.Request) (*url.URL, error) { return u, nil }
	}
	return &http.Client{Transport: tr}, nil
}
