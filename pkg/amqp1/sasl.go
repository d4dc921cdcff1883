package amqp1

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// negotiateSASL runs the server side of SASL after the SASL headers were
// exchanged: mechanisms, init, outcome.
func (c *Conn) negotiateSASL(ctx context.Context) error {
	mechs := make([]encoding.Symbol, len(c.opts.SASL.Mechanisms))
	for i, m := range c.opts.SASL.Mechanisms {
		mechs[i] = encoding.Symbol(m)
	}
	if err := c.writeSASL(&frames.SASLMechanisms{Mechanisms: mechs}); err != nil {
		return err
	}
	h, body, err := c.readFrame()
	if err != nil {
		return fmt.Errorf("amqp1: reading sasl-init: %w", err)
	}
	init, ok := body.(*frames.SASLInit)
	if !ok || h.Type != frames.TypeSASL {
		return fmt.Errorf("%w: %T instead of sasl-init", errUnexpectedSASL, body)
	}
	req := &SASLRequest{Mechanism: string(init.Mechanism), Hostname: init.Hostname}
	authErr := error(nil)
	switch {
	case !slices.Contains(c.opts.SASL.Mechanisms, req.Mechanism):
		authErr = fmt.Errorf("mechanism %q not offered", req.Mechanism)
	case req.Mechanism == SASLPlain:
		parts := bytes.SplitN(init.InitialResponse, []byte{0}, 3)
		if len(parts) != 3 {
			authErr = fmt.Errorf("malformed PLAIN response")
			break
		}
		req.AuthzID, req.Identity, req.Password = string(parts[0]), string(parts[1]), string(parts[2])
	case req.Mechanism == SASLAnonymous:
		req.Identity = string(init.InitialResponse)
	}
	if authErr == nil && c.opts.SASL.Authenticate != nil {
		authErr = c.opts.SASL.Authenticate(ctx, req)
	}
	code := frames.SASLOK
	if authErr != nil {
		code = frames.SASLAuth
	}
	if err := c.writeSASL(&frames.SASLOutcome{Code: code}); err != nil {
		return err
	}
	if authErr != nil {
		return fmt.Errorf("%w: %s: %w", ErrAuth, req.Mechanism, authErr)
	}
	c.sasl = req
	c.log.Debug("amqp sasl ok", "sasl", req)
	return nil
}

func (c *Conn) writeSASL(body frames.Body) error {
	b, err := frames.Append(nil, frames.TypeSASL, 0, body, nil)
	if err != nil {
		return err
	}
	return c.w.writeDirect(b)
}
