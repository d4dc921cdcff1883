package service

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/message"
)

// SendC2D sends a cloud-to-device message to a device (moduleID "")
// or module over AMQP and returns once the hub has queued it. A
// message without MessageID gets a new UUID, written back to m. The
// hub's refusals are *AMQPError values: errors.Is with ErrNotFound
// (no such device), ErrQueueFull, ErrTooLarge, ErrUnauthorized.
func (c *Client) SendC2D(ctx context.Context, deviceID, moduleID string, m *message.Message) error {
	if deviceID == "" {
		return errNoTarget
	}
	if m.MessageID == "" {
		m.MessageID = uuid.NewString()
	}
	to := "/devices/" + url.PathEscape(deviceID) + "/messages/devicebound"
	if moduleID != "" {
		to = "/devices/" + url.PathEscape(deviceID) + "/modules/" + url.PathEscape(moduleID) + "/messages/devicebound"
	}
	msg := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: m.MessageID, To: &to},
		Data:       [][]byte{m.Body},
	}
	p := msg.Properties
	if m.CorrelationID != "" {
		p.CorrelationID = m.CorrelationID
	}
	if m.ContentType != "" {
		p.ContentType = &m.ContentType
	}
	if m.ContentEncoding != "" {
		p.ContentEncoding = &m.ContentEncoding
	}
	if m.UserID != "" {
		p.UserID = []byte(m.UserID)
	}
	if !m.ExpiryTime.IsZero() {
		t := m.ExpiryTime
		p.AbsoluteExpiryTime = &t
	}
	if len(m.Properties) > 0 || m.Ack != "" {
		msg.ApplicationProperties = map[string]any{}
		for k, v := range m.Properties {
			msg.ApplicationProperties[k] = v
		}
		if m.Ack != "" {
			msg.ApplicationProperties["iothub-ack"] = m.Ack
		}
	}
	sender, err := c.c2dSender(ctx)
	if err != nil {
		return err
	}
	if err := sender.Send(ctx, msg, nil); err != nil {
		return fmt.Errorf("service: sending to %s: %w", Target{deviceID, moduleID}, amqpError(err))
	}
	return nil
}

// c2dSender returns the cached sender link to /messages/devicebound.
func (c *Client) c2dSender(ctx context.Context) (*amqp.Sender, error) {
	s, err := c.hubAMQP(ctx)
	if err != nil {
		return nil, err
	}
	c.amqpMu.Lock()
	defer c.amqpMu.Unlock()
	if c.c2d != nil {
		return c.c2d, nil
	}
	snd, err := s.sess.NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		return nil, fmt.Errorf("service: amqp /messages/devicebound: %w", amqpError(err))
	}
	c.c2d = snd
	return snd, nil
}

// Feedback is one delivery-feedback record of a C2D message.
type Feedback struct {
	OriginalMessageID  string    `json:"originalMessageId"`
	EnqueuedTime       time.Time `json:"enqueuedTimeUtc"`
	StatusCode         string    `json:"statusCode"`
	Description        string    `json:"description"`
	DeviceID           string    `json:"deviceId"`
	DeviceGenerationID string    `json:"deviceGenerationId"`
}

// FeedbackReceiver reads feedback batches from
// /messages/serviceBound/feedback.
type FeedbackReceiver struct {
	r *amqp.Receiver
}

// FeedbackReceiver opens a receiver of delivery feedback. Close it
// when done.
func (c *Client) FeedbackReceiver(ctx context.Context) (*FeedbackReceiver, error) {
	s, err := c.hubAMQP(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.sess.NewReceiver(ctx, "/messages/serviceBound/feedback", &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		return nil, fmt.Errorf("service: amqp feedback: %w", amqpError(err))
	}
	return &FeedbackReceiver{r: r}, nil
}

// Receive waits for the next feedback batch, accepts it (so the hub
// does not send it again) and returns its records.
func (f *FeedbackReceiver) Receive(ctx context.Context) ([]Feedback, error) {
	var recs []Feedback
	if err := receiveJSON(ctx, f.r, "feedback batch", &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// receiveJSON waits for the next message on r, decodes its body as
// JSON into v and accepts it; a body that does not decode is rejected
// (so the hub does not send it again) and returned as an error naming
// what.
func receiveJSON(ctx context.Context, r *amqp.Receiver, what string, v any) error {
	m, err := r.Receive(ctx, nil)
	if err != nil {
		return fmt.Errorf("service: %s: %w", what, amqpError(err))
	}
	if err := json.Unmarshal(m.GetData(), v); err != nil {
		_ = r.RejectMessage(ctx, m, &amqp.Error{Condition: amqp.ErrCondDecodeError, Description: err.Error()})
		return fmt.Errorf("service: %s is not the JSON IoT Hub sends: %w", what, err)
	}
	if err := r.AcceptMessage(ctx, m); err != nil {
		return fmt.Errorf("service: %s accept: %w", what, amqpError(err))
	}
	return nil
}

// Close closes the receiver link.
func (f *FeedbackReceiver) Close(ctx context.Context) error { return f.r.Close(ctx) }
