package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
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
	sign     func() (*sas.Token, error)
	cbsMu    sync.Mutex
	stop     chan struct{}
	stopOnce sync.Once
}

// dialAMQP connects to ep (over TLS or WebSocket, through the proxy
// when there is one), opens a session and puts a token for audience on
// $cbs; a goroutine puts a fresh one at 80% of each token's life until
// close. hostName is the AMQP open's hostname.
func (c *Client) dialAMQP(ctx context.Context, ep endpoint, hostName, audience string, sign func() (*sas.Token, error)) (*amqpSession, error) {
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
	s := &amqpSession{conn: conn, audience: audience, sign: sign, stop: make(chan struct{})}
	if err := s.open(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	go s.renew()
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
	_, err = s.putToken(ctx)
	return err
}

// putToken signs a token and puts it on $cbs; it returns the token.
func (s *amqpSession) putToken(ctx context.Context) (*sas.Token, error) {
	tok, err := s.sign()
	if err != nil {
		return nil, err
	}
	s.cbsMu.Lock()
	defer s.cbsMu.Unlock()
	id := uuid.NewString()
	to, replyTo := "$cbs", "cbs"
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id, To: &to, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      "servicebus.windows.net:sastoken",
			"name":      s.audience,
		},
		Value: tok.Encode(),
	}
	if err := s.cbsSend.Send(ctx, req, nil); err != nil {
		return nil, fmt.Errorf("service: amqp put-token: %w", amqpError(err))
	}
	for {
		res, err := s.cbsRecv.Receive(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("service: amqp put-token reply: %w", amqpError(err))
		}
		_ = s.cbsRecv.AcceptMessage(ctx, res)
		if res.Properties == nil || fmt.Sprint(res.Properties.CorrelationID) != id {
			continue
		}
		code, _ := res.ApplicationProperties["status-code"].(int32)
		desc, _ := res.ApplicationProperties["status-description"].(string)
		if code != 200 {
			return nil, &AMQPError{Condition: "amqp:unauthorized-access", Description: fmt.Sprintf("put-token answered %d %s", code, desc)}
		}
		return tok, nil
	}
}

// renew puts a fresh token at 80% of the current one's life.
func (s *amqpSession) renew() {
	tok, err := s.sign()
	for err == nil {
		life := time.Until(tok.Expiry())
		t := time.NewTimer(life * 8 / 10)
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
		tok, err = s.putToken(ctx)
		cancel()
	}
}

func (s *amqpSession) close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return s.conn.Close()
}

// amqpAddr is the hub's AMQP address: HostName's host and port, or
// port 5671 when HostName has none.
func amqpAddr(cs *connstr.ConnectionString) string {
	if cs.Port() != 0 {
		return cs.HostName
	}
	return net.JoinHostPort(cs.Host(), fmt.Sprint(DefaultAMQPPort))
}

// signHub returns a signer of hub-level tokens (sr = the host name).
func (c *Client) signHub() func() (*sas.Token, error) {
	return func() (*sas.Token, error) {
		if c.key == nil {
			return c.token, nil
		}
		return sas.Sign(c.cs.HostName, c.key, &sas.SignOptions{KeyName: c.cs.SharedAccessKeyName, TTL: c.opts.TokenTTL, Now: c.opts.Now})
	}
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
	s, err := c.dialAMQP(ctx, c.hubEndpoint(), c.cs.Host(), c.cs.HostName, c.signHub())
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
