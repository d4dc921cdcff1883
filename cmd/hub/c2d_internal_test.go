package hub

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/service"
)

// The hub's refusals of a C2D message: too large is a usage error (3)
// whatever the hub counted; a full queue stays 1 with a message that
// says what to do; the rest keep their usual codes.
func TestC2DSendError(t *testing.T) {
	wrap := func(ae *service.AMQPError) error { return fmt.Errorf("service: sending to dev1: %w", ae) }
	for _, tc := range []struct {
		name string
		err  error
		code int
		want string
	}{
		{"too large", wrap(&service.AMQPError{Condition: "amqp:link:message-size-exceeded", Description: "MessageTooLarge (413001): message is 65540 bytes"}),
			cmdutil.ExitUsage, "the hub refused the message as too large"},
		{"queue full", wrap(&service.AMQPError{Condition: "amqp:resource-limit-exceeded", Description: "DeviceMaximumQueueDepthExceeded (403004)"}),
			cmdutil.ExitFailure, "the cloud-to-device queue of dev1/mod1 is full"},
		{"not found", wrap(&service.AMQPError{Condition: "amqp:not-found"}), cmdutil.ExitNotFound, "amqp:not-found"},
		{"unauthorized", wrap(&service.AMQPError{Condition: "amqp:unauthorized-access"}), cmdutil.ExitAuth, "unauthorized"},
		{"other", errors.New("service: amqp connect to x: connection refused"), cmdutil.ExitFailure, "connection refused"},
	} {
		err := c2dSendError(tc.err, "dev1", "mod1")
		if code := cmdutil.ExitCode(err); code != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: c2dSendError = %q (exit %d); want exit %d and %q", tc.name, err, code, tc.code, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: c2dSendError(%v) does not wrap it", tc.name, tc.err)
		}
	}
}
