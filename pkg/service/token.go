package service

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/iotctl/iotctl/pkg/sas"
)

// EntraScope is the scope of Microsoft Entra ID tokens for IoT Hub's
// data plane (the C# service SDK's CommonConstants.IotHubAadTokenScopes,
// the Node one's service/src/client.ts).
const EntraScope = "https://iothubs.azure.net/.default"

// Token is the credential a client presents to the hub: the value of
// the HTTPS Authorization header, which is also the body of an AMQP
// CBS put-token. String and LogValue never show it.
type Token struct {
	// Value is "SharedAccessSignature sr=...&sig=...&se=...[&skn=...]"
	// or "Bearer {jwt}".
	Value string
	// Expiry is when the hub stops accepting it.
	Expiry time.Time
}

// Bearer reports whether the token is a Microsoft Entra ID bearer
// token rather than a SAS token.
func (t Token) Bearer() bool { return strings.HasPrefix(t.Value, "Bearer ") }

// String describes the token without its value.
func (t Token) String() string {
	kind := "SAS"
	if t.Bearer() {
		kind = "bearer"
	}
	return kind + " token (REDACTED) expiring " + t.Expiry.UTC().Format(time.RFC3339)
}

// LogValue implements slog.LogValuer without the token's value.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// TokenSource gives a Client the tokens it presents to the hub, on
// HTTPS and on AMQP alike. The client asks again when a token is about
// to expire (HTTPS caches one until five minutes before its expiry;
// AMQP puts a new one at 80% of the current one's life). It must be
// safe for concurrent use. SASSource and EntraSource implement it.
type TokenSource interface {
	Token(ctx context.Context) (Token, error)
}

// SASSource signs hub-level SAS tokens (sr = the host name) with a
// shared access policy's key, or returns one fixed token.
type SASSource struct {
	hostName, keyName string
	key               []byte
	fixed             *sas.Token
	ttl               time.Duration
	now               func() time.Time
}

// NewSASSource returns a source of tokens signed for hostName with the
// policy keyName's key, each valid for ttl from now() (nil: time.Now).
func NewSASSource(hostName, keyName string, key []byte, ttl time.Duration, now func() time.Time) *SASSource {
	if now == nil {
		now = time.Now
	}
	return &SASSource{hostName: hostName, keyName: keyName, key: key, ttl: ttl, now: now}
}

// FixedSASSource returns a source that always gives tok, a token given
// in a connection string; it cannot be renewed.
func FixedSASSource(tok *sas.Token) *SASSource { return &SASSource{fixed: tok} }

// Token implements TokenSource.
func (s *SASSource) Token(context.Context) (Token, error) {
	t := s.fixed
	if t == nil {
		var err error
		if t, err = sas.Sign(s.hostName, s.key, &sas.SignOptions{KeyName: s.keyName, TTL: s.ttl, Now: s.now}); err != nil {
			return Token{}, err
		}
	}
	return Token{Value: t.Encode(), Expiry: t.Expiry()}, nil
}

// EntraSource gives Microsoft Entra ID tokens for IoT Hub's data plane
// (scope EntraScope) from an azcore credential, such as azidentity's
// DefaultAzureCredential, which caches and refreshes them.
type EntraSource struct {
	cred azcore.TokenCredential
}

// NewEntraSource returns a source of tokens from cred.
func NewEntraSource(cred azcore.TokenCredential) *EntraSource { return &EntraSource{cred: cred} }

// Token implements TokenSource. A failure is a *SignInError, unless
// ctx ended.
func (s *EntraSource) Token(ctx context.Context) (Token, error) {
	at, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{EntraScope}})
	if err != nil {
		if ctx.Err() != nil {
			return Token{}, ctx.Err()
		}
		return Token{}, &SignInError{Scope: EntraScope, Err: err}
	}
	return Token{Value: "Bearer " + at.Token, Expiry: at.ExpiresOn}, nil
}
