package amqpfront

import (
	"context"
	"encoding/json"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// fileQueue is the hub's file upload notification queue as a
// serviceQueue: one notification per message, as IoT Hub sends them
// (azure-iot-sdk-csharp iothub/service/src/FileUpload/AmqpFileNotificationReceiver.cs
// reads one FileNotification from each message's body).
type fileQueue struct{ f *Front }

func (q fileQueue) what() string              { return "file notifications" }
func (q fileQueue) added() <-chan struct{}    { return q.f.reg.FileNotificationAdded() }
func (q fileQueue) complete(tok string) error { return q.f.reg.CompleteFileNotification(tok) }
func (q fileQueue) abandon(tok string) error  { return q.f.reg.AbandonFileNotification(tok) }
func (q fileQueue) recheck() time.Duration    { return registry.DefaultFileNotificationLock }

func (q fileQueue) take() (*amqp.Message, string, error) {
	d, err := q.f.reg.TakeFileNotification()
	if err != nil || d == nil {
		return nil, "", err
	}
	msg, err := q.f.fileNotificationMessage(&d.Notification)
	if err != nil {
		_ = q.f.reg.AbandonFileNotification(d.LockToken)
		return nil, "", err
	}
	return msg, d.LockToken, nil
}

// serveFileNotifications sends file upload notifications to a peer
// receiving on /messages/serviceBound/filenotifications, settled as
// feedback is.
func (cs *conn) serveFileNotifications(ctx context.Context, l *amqp1.Link) {
	cs.serveQueue(ctx, l, fileQueue{cs.f})
}

// fileNotificationMessage is the AMQP message of a notification: IoT
// Hub's content type, user-id the hub name, a new message-id, and the
// notification as JSON in a data section.
func (f *Front) fileNotificationMessage(n *iothub.FileNotification) (*amqp.Message, error) {
	body, err := json.Marshal(n)
	if err != nil {
		return nil, err
	}
	ct := iothub.FileNotificationContentType
	return &amqp.Message{
		Annotations: amqp.Annotations{"iothub-enqueuedtime": n.EnqueuedTimeUTC.UTC()},
		Properties: &amqp.MessageProperties{
			MessageID:   registry.NewUUID(),
			UserID:      []byte(f.ehName),
			ContentType: &ct,
		},
		Data: [][]byte{body},
	}, nil
}
