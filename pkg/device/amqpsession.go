package device

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/Azure/go-amqp"
)

// devicesPerSession is how many devices put their links on one AMQP
// session of a connection. The Azure IoT C SDK's shared transport puts
// every device's links on the connection's one session, the session
// of its $cbs link too (azure-iot-sdk-c iothub_client/src/
// iothubtransport_amqp_common.c, IoTHubTransport_AMQP_Common_Device_DoWork
// gives each device amqp_connection_get_session_handle's session;
// iothubtransport_amqp_connection.c create_cbs_handle puts $cbs on
// it), and IoT Hub takes that. A session costs go-amqp a goroutine and
// a 5,000-entry frame queue, so sharing it takes them off each device.
//
// Why not every device of a connection on one session: a device has
// at most six links (telemetry, C2D, and the methods and twin pairs)
// and go-amqp never looks at the handle-max the peer sends in its
// begin (it numbers links up to its own limit, go-amqp session.go
// allocateHandle), so the devices of a session must stay below the
// lowest handle-max a hub gives: the local hub's is 1023 (pkg/amqp1),
// Microsoft.Azure.Amqp's default 262,143 (AmqpConstants.
// DefaultMaxLinkHandles). 100 devices make at most 600 links and the
// two of $cbs, with room left for links whose detach is still on the
// way; the simulator's default of 100 devices a connection is one
// session, as in the C SDK, and 995 devices (the most a connection
// takes) are ten.
const devicesPerSession = 100

// amqpSession is a session of an amqpConn and the devices whose links
// are on it. Its fields but ready and sess are under amqpConn.mu; sess
// and err are set before ready is closed.
type amqpSession struct {
	sess    *amqp.Session
	err     error         // beginning it failed
	ready   chan struct{} // closed once begun (or failed)
	devices int           // the devices holding a place on it
	cbs     bool          // the session of $cbs: it ends with the connection
}

// session gives a device a place on a session of ac with room, and
// begins a new one when none has. The begin is the connection's, not
// the device's: it is bounded by timeout but not cancelled with ctx,
// which only stops this device's wait. Release the place with
// releaseSession.
func (ac *amqpConn) session(ctx context.Context, timeout time.Duration) (*amqpSession, error) {
	ac.mu.Lock()
	var s *amqpSession
	for _, x := range ac.sessions {
		if x.devices < devicesPerSession {
			s = x
			break
		}
	}
	fresh := s == nil
	if fresh {
		s = &amqpSession{ready: make(chan struct{})}
		ac.sessions = append(ac.sessions, s)
	}
	s.devices++
	ac.mu.Unlock()
	if fresh {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		sess, err := ac.conn.NewSession(bctx, nil)
		cancel()
		ac.mu.Lock()
		s.sess, s.err = sess, err
		if err != nil {
			ac.sessions = slices.DeleteFunc(ac.sessions, func(x *amqpSession) bool { return x == s })
		}
		ac.mu.Unlock()
		close(s.ready)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		ac.releaseSession(ctx, s)
		return nil, ctx.Err()
	}
	if s.err != nil {
		ac.releaseSession(ctx, s)
		return nil, s.err
	}
	return s, nil
}

// releaseSession gives back a device's place on s: the last device to
// leave a session other than $cbs's ends it, within ctx.
func (ac *amqpConn) releaseSession(ctx context.Context, s *amqpSession) {
	ac.mu.Lock()
	s.devices--
	end := s.devices == 0 && !s.cbs && s.err == nil && slices.Contains(ac.sessions, s)
	if end {
		ac.sessions = slices.DeleteFunc(ac.sessions, func(x *amqpSession) bool { return x == s })
	}
	ac.mu.Unlock()
	if end {
		_ = s.sess.Close(ctx)
	}
}

// retire takes s out of the sessions devices are given when err says
// the session ended: its devices leave it as they reconnect. When it
// is the session of $cbs, no token can be put on the connection any
// more, so the connection is closed and every device reconnects.
func (ac *amqpConn) retire(s *amqpSession, err error) {
	var se *amqp.SessionError
	if s == nil || !errors.As(err, &se) {
		return
	}
	ac.mu.Lock()
	ac.sessions = slices.DeleteFunc(ac.sessions, func(x *amqpSession) bool { return x == s })
	ac.mu.Unlock()
	if s.cbs {
		_ = ac.conn.Close()
	}
}
