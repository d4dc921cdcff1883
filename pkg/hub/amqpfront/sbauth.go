package amqpfront

import (
	"errors"
	"strings"

	"github.com/iotctl/iotctl/pkg/hub/auth"
)

// verifyToken checks a token put on $cbs for audience and returns its
// policy. IoT Hub signs with the base64-decoded key (pkg/hub/auth);
// Event Hubs and Service Bus clients sign with the key's text as it is
// (its UTF-8 bytes), so for an Event Hub audience that form is accepted
// too, as the built-in endpoint (a Service Bus namespace) does.
func (f *Front) verifyToken(token, audience string) (string, error) {
	if !f.isEventHubAudience(audience) {
		return f.auth.Service(token, 0)
	}
	// The Event Hub-compatible endpoint keeps its shared keys when
	// local authentication is disabled.
	policy, err := f.auth.EventHub(token, 0, false)
	var ae *auth.Error
	if err == nil || !errors.As(err, &ae) || ae.Reason != auth.ReasonSignature {
		return policy, err
	}
	if p, sbErr := f.auth.EventHub(token, 0, true); sbErr == nil {
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
