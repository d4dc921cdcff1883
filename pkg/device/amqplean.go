package device

import (
	"context"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/client"
)

// devicesPerSession is how many devices put their links on one AMQP
// session of a shared connection. The Azure IoT C SDK's shared
// transport puts every device's links on the connection's one session
// (azure-iot-sdk-c iothub_client/src/iothubtransport_amqp_common.c,
// IoTHubTransport_AMQP_Common_Device_DoWork gives each device
// amqp_connection_get_session_handle's session), and IoT Hub takes
// that. A device has at most six links (telemetry, C2D, and the
// methods and twin pairs), and a session's links must stay below the
// lowest handle-max a hub gives in its begin: the local hub's is 1023
// (pkg/amqp1), Microsoft.Azure.Amqp's default 262,143 (AmqpConstants.
// DefaultMaxLinkHandles). 100 devices make at most 600 links, with
// room left for links whose detach is still on the way; the
// simulator's default of 100 devices a connection is one session, and
// 995 devices (the most a connection takes) are ten.
const devicesPerSession = 100

// leanConn is a shared AMQP connection on the lean engine
// (pkg/amqp1/client), whose own first session carries $cbs, and the
// sessions its devices' links are on (devicesPerSession each). A session on the lean engine is a small
// struct with no goroutine, so they stay until the connection ends.
type leanConn struct {
	conn *client.Conn
	lost lossNotice[*leanLinks]

	mu       sync.Mutex
	sessions []*leanSession
}

// leanSession is a session of a leanConn and how many devices have a
// place on it; sess and err are set before ready is closed.
type leanSession struct {
	sess    *client.Session
	err     error
	ready   chan struct{}
	devices int // under leanConn.mu
}

// Done is closed when the connection has ended.
func (lc *leanConn) Done() <-chan struct{} { return lc.conn.Done() }

func (lc *leanConn) close() { _ = lc.conn.Close() }

// dialLean connects as dialAMQP does (TLS or WebSocket, through the
// proxy when there is one) and opens AMQP on the lean engine with SASL
// ANONYMOUS and its $cbs links.
func dialLean(ctx context.Context, cfg *config) (*leanConn, error) {
	return openAMQP(ctx, cfg, func(ctx context.Context, nc net.Conn, host string) (*leanConn, error) {
		conn, err := client.Dial(ctx, nc, &client.Options{HostName: host, Properties: clientVersion})
		if err != nil {
			return nil, err
		}
		lc := &leanConn{conn: conn}
		go lc.watch()
		return lc, nil
	})
}

// watch tells every device on lc when the connection ends (one
// goroutine per connection).
func (lc *leanConn) watch() {
	<-lc.conn.Done()
	lc.lost.fire(lc.conn.Err())
}

// session gives a device a place on a session with room, beginning one
// when none has; the begin is the connection's, bounded by timeout,
// and ctx only ends this device's wait.
func (lc *leanConn) session(ctx context.Context, timeout time.Duration) (*leanSession, error) {
	lc.mu.Lock()
	var s *leanSession
	for _, x := range lc.sessions {
		if x.devices < devicesPerSession {
			s = x
			break
		}
	}
	fresh := s == nil
	if fresh {
		s = &leanSession{ready: make(chan struct{})}
		lc.sessions = append(lc.sessions, s)
	}
	s.devices++
	lc.mu.Unlock()
	if fresh {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		s.sess, s.err = lc.conn.NewSession(bctx)
		cancel()
		if s.err != nil {
			lc.retire(s)
		}
		close(s.ready)
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		lc.release(s)
		return nil, ctx.Err()
	}
	if s.err != nil {
		lc.release(s)
		return nil, s.err
	}
	return s, nil
}

// release gives back a device's place on s.
func (lc *leanConn) release(s *leanSession) {
	lc.mu.Lock()
	s.devices--
	lc.mu.Unlock()
}

// retire takes s out of the sessions devices are given: it failed to
// begin, or the hub ended it.
func (lc *leanConn) retire(s *leanSession) {
	lc.mu.Lock()
	lc.sessions = slices.DeleteFunc(lc.sessions, func(x *leanSession) bool { return x == s })
	lc.mu.Unlock()
}
