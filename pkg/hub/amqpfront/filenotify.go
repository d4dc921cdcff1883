package amqpfront

import (
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// fileQueue is the hub's file upload notification queue as a
// serviceQueue: one notification per message, as IoT Hub sends them
// (azure-iot-sdk-csharp iothub/service/src/FileUpload/AmqpFileNotificationReceiver.cs
// reads one FileNotification from each message's body).
type fileQueue struct{ f *Front }

func (q fileQueue) what() string              { return "file notifications" }
func (q fileQueue) contentType() string       { return iothub.FileNotificationContentType }
func (q fileQueue) added() <-chan struct{}    { return q.f.reg.FileNotificationAdded() }
func (q fileQueue) complete(tok string) error { return q.f.reg.CompleteFileNotification(tok) }
func (q fileQueue) abandon(tok string) error  { return q.f.reg.AbandonFileNotification(tok) }
func (q fileQueue) recheck() time.Duration    { return registry.DefaultFileNotificationLock }

func (q fileQueue) take() (any, time.Time, string, error) {
	d, err := q.f.reg.TakeFileNotification()
	if err != nil || d == nil {
		return nil, time.Time{}, "", err
	}
	return d.Notification, d.Notification.EnqueuedTimeUTC.Time, d.LockToken, nil
}
