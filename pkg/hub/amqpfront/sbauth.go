package amqpfront

import (
	"errors"
	"strings"

	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/sas"
)

// verifyToken checks a token put on $cbs for audience and returns its
// policy. IoT Hub signs with the base64-decoded key (pkg/hub/auth);
// Event Hubs and Service Bus clients sign with the key's text as it is
// (its UTF-8 bytes), so for an Event Hub audience that form is accepted
// too, as the built-in endpoint (a Service Bus namespace) does.
func (f *Front) verifyToken(token, audience string) (string, error) {
	policy, err := f.auth.Service(token, 0)
	var ae *auth.Error
	if err == nil || !errors.As(err, &ae) || ae.Reason != auth.ReasonSignature || !f.isEventHubAudience(audience) {
		return policy, err
	}
	if p, sbErr := f.verifyServiceBus(token); sbErr == nil {
		return p, nil
	} else if errors.As(sbErr, &ae) && ae.Reason != auth.ReasonSignature {
		return "", sbErr
	}
	return "", err
}

// isEventHubAudience reports whether an audience names the Event
// Hub-compatible endpoint: its path starts with the Event Hub's name.
func (f *Front) isEventHubAudience(audience string) bool {
	first, _, _ := strings.Cut(audiencePath(audience), "/")
	return strings.EqualFold(first, f.ehName)
}

// verifyServiceBus checks a Service Bus-style token: signed with the
// text of one of its policy's keys, unexpired, scoped to one of the
// hub's host names or a resource under one.
func (f *Front) verifyServiceBus(token string) (string, error) {
	tok, err := sas.Parse(token)
	if err != nil {
		return "", &auth.Error{Reason: auth.ReasonMalformed}
	}
	if tok.KeyName == "" {
		return "", &auth.Error{Reason: auth.ReasonNoPolicy}
	}
	p, err := f.reg.Policy(tok.KeyName)
	if err != nil {
		return "", &auth.Error{Reason: auth.ReasonUnknownPolicy, Detail: tok.KeyName}
	}
	now := f.now()
	verified, expired := false, false
	for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
		if k == "" {
			continue
		}
		switch err := sas.Verify(tok, []byte(k), now); {
		case err == nil:
			verified = true
		case errors.Is(err, sas.ErrExpired):
			expired = true
		}
	}
	switch {
	case expired && !verified:
		return "", &auth.Error{Reason: auth.ReasonExpired}
	case !verified:
		return "", &auth.Error{Reason: auth.ReasonSignature}
	}
	if len(f.opts.HostNames) > 0 {
		ok := false
		for _, h := range f.opts.HostNames {
			if sas.Covers(h, tok.Scope()) {
				ok = true
				break
			}
		}
		if !ok {
			return "", &auth.Error{Reason: auth.ReasonScope}
		}
	}
	return p.KeyName, nil
}
