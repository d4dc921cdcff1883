package service

import (
	"context"
	"fmt"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// FileNotification is a file upload notification: a device uploaded
// BlobName (BlobURI) and said it succeeded.
type FileNotification = iothub.FileNotification

// FileNotificationReceiver reads file upload notifications from
// /messages/serviceBound/filenotifications (azure-iot-sdk-node
// service/src/amqp.ts, getFileNotificationReceiver).
type FileNotificationReceiver struct {
	r *amqp.Receiver
}

// FileNotificationReceiver opens a receiver of file upload
// notifications. Close it when done. It takes one notification at a
// time: what it has not returned stays in the hub's queue.
func (c *Client) FileNotificationReceiver(ctx context.Context) (*FileNotificationReceiver, error) {
	s, err := c.hubAMQP(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.sess.NewReceiver(ctx, "/messages/serviceBound/filenotifications", &amqp.ReceiverOptions{Credit: 1})
	if err != nil {
		return nil, fmt.Errorf("service: amqp file notifications: %w", amqpError(err))
	}
	return &FileNotificationReceiver{r: r}, nil
}

// Receive waits for the next notification, accepts it (so the hub does
// not send it again) and returns it.
func (f *FileNotificationReceiver) Receive(ctx context.Context) (*FileNotification, error) {
	var n FileNotification
	if err := receiveJSON(ctx, f.r, "file notification", &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Close closes the receiver link.
func (f *FileNotificationReceiver) Close(ctx context.Context) error { return f.r.Close(ctx) }
