// Package cbs is the client side of AMQP claims-based security as IoT
// Hub and Event Hubs speak it: a sender and a receiver on the node
// "$cbs" and a put-token request per audience, answered with a
// status-code (azure-iot-sdk-node common/transport/amqp/src/amqp_cbs.ts;
// azure-amqp src/Cbs/CbsConstants.cs). The service client and the
// device client both put their tokens through it.
package cbs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"
)

// Token types of a put-token request.
const (
	// TypeSAS is the type every SDK but the C# device client sends for
	// a SAS token (azure-iot-sdk-node amqp_cbs.ts, azure-iot-sdk-c
	// iothubtransport_amqp_cbs_auth.c).
	TypeSAS = "servicebus.windows.net:sastoken"
	// TypeBearer is an Entra ID token's type (azure-iot-sdk-csharp
	// IotHubTokenCredentialProperties.cs).
	TypeBearer = "Bearer"
)

// Link is a request-response pair on $cbs in one session. PutToken
// may be called from several goroutines: requests go one at a time.
type Link struct {
	mu  sync.Mutex
	snd *amqp.Sender
	rcv *amqp.Receiver
}

// Open attaches the $cbs sender and receiver on sess. Errors are
// go-amqp's.
func Open(ctx context.Context, sess *amqp.Session) (*Link, error) {
	snd, err := sess.NewSender(ctx, "$cbs", nil)
	if err != nil {
		return nil, err
	}
	rcv, err := sess.NewReceiver(ctx, "$cbs", &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		_ = snd.Close(ctx)
		return nil, err
	}
	return &Link{snd: snd, rcv: rcv}, nil
}

// StatusError is a put-token the peer answered with a status-code other
// than 200 (401 for a token it refused).
type StatusError struct {
	// Code is the status-code.
	Code int
	// Description is the status-description, often the reason.
	Description string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("put-token answered %d %s", e.Code, e.Description)
}

// PutToken puts token (the whole "SharedAccessSignature sr=..." or
// "Bearer ...") for audience with type typ and, when expiry is not
// zero, the expiration property (azure-amqp's AmqpCbsLink). It returns
// nil on status 200 (or 202), a *StatusError for another status, or
// go-amqp's error when a link failed.
func (l *Link) PutToken(ctx context.Context, typ, audience, token string, expiry time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := uuid.NewString()
	if err := l.snd.Send(ctx, Request(id, typ, audience, token, expiry), nil); err != nil {
		return err
	}
	for {
		res, err := l.rcv.Receive(ctx, nil)
		if err != nil {
			return err
		}
		_ = l.rcv.AcceptMessage(ctx, res)
		if ResponseID(res) != id {
			continue // the answer to an earlier request that timed out
		}
		return Result(res)
	}
}

// Request is the put-token request with message-id id: token (the
// whole "SharedAccessSignature sr=..." or "Bearer ...") for audience
// with type typ and, when expiry is not zero, the expiration property
// (azure-amqp's AmqpCbsLink). Every client that puts tokens builds
// them here.
func Request(id, typ, audience, token string, expiry time.Time) *amqp.Message {
	to, replyTo := "$cbs", "cbs"
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id, To: &to, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": "put-token",
			"type":      typ,
			"name":      audience,
		},
		Value: token,
	}
	if !expiry.IsZero() {
		req.ApplicationProperties["expiration"] = expiry.UTC()
	}
	return req
}

// ResponseID is the correlation-id of a put-token response as text,
// to match it with its request's id.
func ResponseID(res *amqp.Message) string {
	if res.Properties == nil || res.Properties.CorrelationID == nil {
		return ""
	}
	return fmt.Sprint(res.Properties.CorrelationID)
}

// Result reads a put-token response: nil for status 200 (or 202), a
// *StatusError for another.
func Result(res *amqp.Message) error {
	code, _ := res.ApplicationProperties["status-code"].(int32)
	desc, _ := res.ApplicationProperties["status-description"].(string)
	if code != 200 && code != 202 {
		return &StatusError{Code: int(code), Description: desc}
	}
	return nil
}

// Close detaches both links.
func (l *Link) Close(ctx context.Context) error {
	err := l.snd.Close(ctx)
	if err2 := l.rcv.Close(ctx); err == nil {
		err = err2
	}
	return err
}
