package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
)

// DefaultAMQPPort is IoT Hub's AMQPS port, used when HostName has none.
const DefaultAMQPPort = 5671

// AMQPError is an AMQP error condition the hub answered with. It
// matches the Err* conditions with errors.Is: ErrUnauthorized
// (amqp:unauthorized-access), ErrNotFound (amqp:not-found),
// ErrQueueFull (amqp:resource-limit-exceeded, or IoT Hub's
// DeviceMaximumQueueDepthExceeded 403004 in the description),
// ErrThrottled (a *throttled condition, ThrottlingException 429001),
// ErrTooLarge (amqp:link:message-size-exceeded, MessageTooLarge
// 413001) and ErrBadRequest (argument errors, amqp:invalid-field,
// amqp:decode-error).
type AMQPError struct {
	// Condition is the AMQP error condition, e.g. "amqp:not-found".
	Condition string
	// Description is the hub's text.
	Description string
}

func (e *AMQPError) Error() string {
	if e.Description == "" {
		return "amqp: " + e.Condition
	}
	return "amqp: " + e.Condition + ": " + e.Description
}

// Errors of the AMQP side that have no HTTP twin.
var (
	// ErrQueueFull: the device's cloud-to-device queue is full (403004).
	ErrQueueFull = errors.New("service: device queue full")
	// ErrTooLarge: the message is over the hub's limit.
	ErrTooLarge = errors.New("service: message too large")
)

// Is matches the Err* conditions.
func (e *AMQPError) Is(target error) bool {
	c := strings.ToLower(e.Condition)
	d := strings.ToLower(e.Description)
	switch target {
	case ErrUnauthorized:
		return c == "amqp:unauthorized-access"
	case ErrNotFound:
		return c == "amqp:not-found"
	case ErrQueueFull:
		return strings.Contains(c, "resource-limit-exceeded") || strings.Contains(d, "devicemaximumqueuedepthexceeded") || strings.Contains(d, "403004")
	case ErrThrottled:
		return strings.Contains(c, "throttled") || strings.Contains(d, "throttlingexception") || strings.Contains(d, "429001")
	case ErrTooLarge:
		return strings.Contains(c, "message-size-exceeded") || strings.Contains(d, "messagetoolarge") || strings.Contains(d, "413001")
	case ErrBadRequest:
		return strings.Contains(c, "argument") || c == "amqp:invalid-field" || c == "amqp:decode-error"
	}
	return false
}

// amqpError turns go-amqp errors carrying a remote condition into
// *AMQPError; other errors are returned as they are.
func amqpError(err error) error {
	if err == nil {
		return nil
	}
	var ae *amqp.Error
	var le *amqp.LinkError
	var ce *amqp.ConnError
	switch {
	case errors.As(err, &ae):
		return &AMQPError{Condition: string(ae.Condition), Description: ae.Description}
	case errors.As(err, &le) && le.RemoteErr != nil:
		return &AMQPError{Condition: string(le.RemoteErr.Condition), Description: le.RemoteErr.Description}
	case errors.As(err, &ce) && ce.RemoteErr != nil:
		return &AMQPError{Condition: string(ce.RemoteErr.Condition), Description: ce.RemoteErr.Description}
	}
	return err
}

// amqpSession is one AMQP connection with its session and CBS links,
// renewing its token before it expires.
type amqpSession struct {
	conn     *amqp.Conn
	sess     *amqp.Session
	cbsSend  *amqp.Sender
	cbsRecv  *amqp.Receiver
	audience string
	src      TokenSource
	cbsMu    sync.Mutex
	// tok is the token put when the session opened; renew takes it
	// from there.
	tok      Token
	stop     chan struct{}
	stopOnce sync.Once
	renewed  chan struct{} // closed when renew returns
}

// dialAMQP connects to ep (over TLS or WebSocket, through the proxy
// when there is one), opens a session and puts a token for audience on
// $cbs; a goroutine puts a fresh one at 80% of each token's life until
// close. hostName is the AMQP open's hostname.
func (c *Client) dialAMQP(ctx context.Context, ep endpoint, hostName, audience string, src TokenSource) (*amqpSession, error) {
	start := time.Now()
	nc, err := c.dialEndpoint(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("service: amqp connect to %s: %w", ep, err)
	}
	// TLS (and SASL ANONYMOUS) are below AMQP here: go-amqp speaks
	// plain AMQP over nc, which it owns from now on.
	conn, err := amqp.NewConn(ctx, nc, &amqp.ConnOptions{
		HostName:   hostName,
		SASLType:   amqp.SASLTypeAnonymous(),
		Properties: map[string]any{"com.microsoft:client-version": c.opts.UserAgent},
	})
	if err != nil {
		err = amqpError(err)
		var ae *AMQPError
		if !errors.As(err, &ae) {
			err = proxy.NewNetError(ctx, start, ep.addr, proxy.PhaseAnswer, err)
		}
		return nil, fmt.Errorf("service: amqp connect to %s: %w", ep, err)
	}
	s := &amqpSession{conn: conn, audience: audience, src: src, stop: make(chan struct{}), renewed: make(chan struct{})}
	if err := s.open(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	go s.renew(c.log)
	return s, nil
}

func (s *amqpSession) open(ctx context.Context) error {
	var err error
	if s.sess, err = s.conn.NewSession(ctx, nil); err != nil {
		return fmt.Errorf("service: amqp session: %w", amqpError(err))
	}
	if s.cbsSend, err = s.sess.NewSender(ctx, "$cbs", nil); err != nil {
		return fmt.Errorf("service: amqp $cbs: %w", amqpError(err))
	}
	if s.cbsRecv, err = s.sess.NewReceiver(ctx, "$cbs", &amqp.ReceiverOptions{Credit: 10}); err != nil {
		return fmt.Errorf("service: amqp $cbs: %w", amqpError(err))
	}
	s.tok, err = s.putToken(ctx)
	return err
}

// putToken gets a token from the source and puts it on $cbs; it
// returns the token. A SAS token goes as every SDK sends it (type
// servicebus.windows.net:sastoken, name the audience); an Entra ID
// token as the C# service SDK sends it (IotHubTokenCredentialProperties.cs:
// type "Bearer", the body "Bearer {jwt}"), for the same audience.
func (s *amqpSession) putToken(ctx context.Context) (Token, error) {
	tok, err := s.src.Token(ctx)
	if err != nil {
		return Token{}, err
	}
	typ := "servicebus.windows.net:sastoken"
	if tok.Bearer() {
		typ = "Bearer"
	}
	s.cbsMu.Lock()
	defer s.cbsMu.Unlock()
	id := uuid.NewString()
	to, replyTo := "$cbs", "cbs"
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id, To: &to, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      typ,
			"name":      s.audience,
		},
		Value: tok.Value,
	}
	if !tok.Expiry.IsZero() {
		req.ApplicationProperties["expiration"] = tok.Expiry.UTC()
	}
	if err := s.cbsSend.Send(ctx, req, nil); err != nil {
		return Token{}, fmt.Errorf("service: amqp put-token: %w", amqpError(err))
	}
	for {
		res, err := s.cbsRecv.Receive(ctx, nil)
		if err != nil {
			return Token{}, fmt.Errorf("service: amqp put-token reply: %w", amqpError(err))
		}
		_ = s.cbsRecv.AcceptMessage(ctx, res)
		if res.Properties == nil || fmt.Sprint(res.Properties.CorrelationID) != id {
			continue
		}
		code, _ := res.ApplicationProperties["status-code"].(int32)
		desc, _ := res.ApplicationProperties["status-description"].(string)
		if code != 200 {
			return Token{}, &AMQPError{Condition: "amqp:unauthorized-access", Description: fmt.Sprintf("put-token answered %d %s", code, desc)}
		}
		return tok, nil
	}
}

// renew puts a fresh token when 80% of the current one's life has
// passed, until the session closes. The margin is proportionate, so a
// token of an hour is renewed 12 minutes before it expires and one of
// a few seconds (tests) still in time. A failed renewal is tried again
// when half the time left has passed (at least 200 ms later) while the
// current token lasts; after that the hub closes the links and the
// failure is logged.
func (s *amqpSession) renew(log *slog.Logger) {
	defer close(s.renewed)
	tok := s.tok
	if tok.Expiry.IsZero() {
		return
	}
	wait := time.Until(tok.Expiry) * 8 / 10
	for {
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-s.conn.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			// Stop waiting for the source or the hub when the session
			// closes.
			select {
			case <-s.stop:
			case <-s.conn.Done():
			case <-ctx.Done():
			}
			cancel()
		}()
		next, err := s.putToken(ctx)
		cancel()
		left := time.Until(tok.Expiry)
		switch {
		case err == nil:
			tok = next
			if tok.Expiry.IsZero() {
				return
			}
			wait = time.Until(tok.Expiry) * 8 / 10
		case left <= 0:
			log.Warn("amqp token renewal failed and the token expired; the hub closes the links", "audience", s.audience, "err", err)
			return
		default:
			log.Debug("amqp token renewal failed; trying again while the token lasts", "audience", s.audience, "err", err, "left", left)
			wait = max(left/2, 200*time.Millisecond)
		}
	}
}

// close closes the connection and waits for the renewal to stop.
func (s *amqpSession) close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	err := s.conn.Close()
	<-s.renewed
	return err
}

// amqpAddr is the hub's AMQP address: HostName's host and port, or
// port 5671 when HostName has none.
func amqpAddr(cs *connstr.ConnectionString) string {
	if cs.Port() != 0 {
		return cs.HostName
	}
	return net.JoinHostPort(cs.Host(), fmt.Sprint(DefaultAMQPPort))
}

// hubAMQP returns the client's shared AMQP session to the hub, opening
// it on first use or after it was lost.
func (c *Client) hubAMQP(ctx context.Context) (*amqpSession, error) {
	c.amqpMu.Lock()
	defer c.amqpMu.Unlock()
	if c.amqp != nil {
		select {
		case <-c.amqp.conn.Done():
			c.amqp = nil
			c.c2d = nil
		default:
			return c.amqp, nil
		}
	}
	s, err := c.dialAMQP(ctx, c.hubEndpoint(), c.cs.Host(), c.cs.HostName, c.src)
	if err != nil {
		return nil, err
	}
	c.amqp = s
	return s, nil
}

// Close closes the client's AMQP connection, if it has one. HTTPS
// needs no closing.
func (c *Client) Close() error {
	c.amqpMu.Lock()
	defer c.amqpMu.Unlock()
	if c.amqp == nil {
		return nil
	}
	err := c.amqp.close()
	c.amqp, c.c2d = nil, nil
	return err
}
