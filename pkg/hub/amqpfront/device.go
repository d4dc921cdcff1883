package amqpfront

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// The device endpoint: links of devices and modules, authorized by the
// tokens they put on $cbs or by the connection's X.509 client
// certificate (x509.go), over the hub's device core. Link addresses
// (the Node SDK's common/core/src/endpoint.ts; the C# SDK's
// CommonConstants.cs; PROTOCOL facts in the package doc):
//
//	devices/{id}/messages/events                  telemetry (the device sends)
//	devices/{id}/messages/devicebound             C2D (the device receives)
//	devices/{id}/methods/devicebound              method requests and responses (a link pair)
//	devices/{id}/twin                             twin requests and responses (a link pair)
//	devices/{id}/modules/{mid}/messages/events    a module's telemetry (it sends) and input messages (it receives)
//	devices/{id}/modules/{mid}/methods/devicebound
//	devices/{id}/modules/{mid}/twin

// deviceChannel is what a device link is for.
type deviceChannel int

const (
	chanEvents deviceChannel = iota
	chanC2D
	chanMethods
	chanTwin
)

// deviceAddress reads a device link's address: the identity (ids
// percent-decoded, their case kept) and the channel. ok is false for
// an address that is not a device's.
func deviceAddress(addr string) (id core.Identity, ch deviceChannel, ok bool) {
	s := strings.Split(nodePath(addr), "/")
	if len(s) < 3 || !strings.EqualFold(s[0], "devices") {
		return id, 0, false
	}
	d, err := url.PathUnescape(s[1])
	if err != nil || d == "" {
		return id, 0, false
	}
	id.DeviceID = d
	rest := s[2:]
	if len(rest) >= 3 && strings.EqualFold(rest[0], "modules") {
		m, err := url.PathUnescape(rest[1])
		if err != nil || m == "" {
			return id, 0, false
		}
		id.ModuleID = m
		rest = rest[2:]
	}
	switch strings.ToLower(strings.Join(rest, "/")) {
	case "messages/events":
		return id, chanEvents, true
	case "messages/devicebound":
		return id, chanC2D, true
	case "methods/devicebound":
		return id, chanMethods, true
	case "twin":
		return id, chanTwin, true
	}
	return id, 0, false
}

// identityPath is the resource path of an identity, as grants cover it.
func identityPath(id core.Identity) string {
	if id.ModuleID == "" {
		return "devices/" + id.DeviceID
	}
	return "devices/" + id.DeviceID + "/modules/" + id.ModuleID
}

// errNoDeviceEndpoint refuses device links on a Front without a core.
var errNoDeviceEndpoint = &amqp1.Error{Condition: amqp1.ErrCondNotImplemented,
	Description: "this hub serves no devices over AMQP"}

// attachDevice authorizes and serves a device's or module's link.
func (cs *conn) attachDevice(ctx context.Context, l *amqp1.Link, id core.Identity, ch deviceChannel) error {
	if cs.f.opts.Core == nil {
		return errNoDeviceEndpoint
	}
	addr := l.Address()
	if e := cs.authorizeLink(l, nodePath(addr), registry.DeviceConnect); e != nil {
		e.Description += "; put a SAS token for " + identityPath(id) + " (the device's or module's own, or a policy's with DeviceConnect) on $cbs before attaching"
		if e := cs.authorizeX509(l, id, e); e != nil {
			return e
		}
	}
	dc := cs.deviceConn(id, l)
	if dc == nil {
		cs.forget(l)
		return &amqp1.Error{Condition: amqp1.ErrCondDetachForced, Description: "the connection is closing"}
	}
	// The link is let go of when it ends. Links the device sends
	// telemetry on or receives on hold no goroutine of their own while
	// they are quiet (with 1,000 devices on a connection, idle
	// goroutines would cost more than the rest of their state); the
	// others are served by one goroutine each.
	end := func() {
		dc.release(l, l.Err())
		cs.forget(l)
	}
	serve := func(f func()) {
		go func() {
			f()
			<-l.Done()
			end()
		}()
	}
	sending := l.Role() == amqp1.RoleReceiver // the device sends
	switch {
	case ch == chanEvents && sending:
		if err := l.HandleDeliveries(dc.ingestTelemetry); err != nil {
			end()
			return err
		}
		l.AfterDone(end)
	case ch == chanC2D && !sending, ch == chanEvents && !sending && id.ModuleID != "":
		// A module receives its input messages on its events address
		// (the Node SDK's endpoint.moduleMessagePath).
		dc.setLink(&dc.c2d, l)
		serve(func() { dc.watchCredit(l) })
	case ch == chanMethods && sending:
		serve(func() { dc.serveMethodResponses(ctx, l) })
	case ch == chanMethods:
		dc.setLink(&dc.methods, l)
		l.AfterDone(end)
	case ch == chanTwin && sending:
		serve(func() { dc.serveTwin(ctx, l) })
	case ch == chanTwin:
		dc.setLink(&dc.twin, l)
		l.AfterDone(end)
	default:
		dc.release(l, nil)
		cs.forget(l)
		return notFound(addr)
	}
	cs.f.log.Debug("amqp device link attached", "device", id.DeviceID, "module", id.ModuleID, "link", l.Name(),
		"channel", ch, "role", l.Role().String())
	return nil
}

// deviceConn returns the connection's devConn of id, attaching the
// identity to the core with its first link, and counts l as one of its
// links until the caller releases it. nil when the AMQP connection is
// closing.
func (cs *conn) deviceConn(id core.Identity, l *amqp1.Link) *devConn {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return nil
	}
	if cs.devices == nil {
		cs.devices = map[core.Identity]*devConn{}
	}
	dc := cs.devices[id]
	fresh := dc == nil || dc.isClosed()
	if fresh {
		dc = &devConn{cs: cs, id: id, attached: make(chan struct{}), rids: newRequestIDs()}
		cs.devices[id] = dc
	}
	var expiry time.Time
	method := "sas"
	if a, ok := cs.authorized[l]; ok {
		if g := cs.grants[a.key]; g != nil {
			expiry = g.expiry
			if g.x509 {
				method = "x509"
			}
		}
	}
	dc.mu.Lock()
	dc.links = append(dc.links, l)
	dc.mu.Unlock()
	cs.mu.Unlock()
	if fresh {
		dc.s = cs.f.opts.Core.Attach(id, dc, core.AttachOptions{AuthMethod: method, Transport: "amqp", Expiry: expiry})
		close(dc.attached)
	}
	<-dc.attached
	return dc
}

// renewDevices moves the end of the device sessions a new grant covers
// to its expiry (a token renewed with put-token on a live connection).
// Call with cs.mu held.
func (cs *conn) renewDevices(g *grant) {
	if g.expiry.IsZero() || !g.rights.Has(registry.DeviceConnect) {
		return
	}
	for id, dc := range cs.devices {
		if !hasPrefix(segments(identityPath(id)), g.path) {
			continue
		}
		if best, _ := cs.bestGrant(segments(identityPath(id)), registry.DeviceConnect, cs.f.now()); best == g {
			go func() {
				<-dc.attached
				dc.s.Renew(g.expiry)
			}()
		}
	}
}

// devConn is one identity's part of an AMQP connection: the core's
// core.Conn over the identity's links.
type devConn struct {
	cs       *conn
	id       core.Identity
	s        *core.Session
	attached chan struct{} // closed once s is set
	rids     requestIDs

	mu    sync.Mutex
	links []*amqp1.Link // a handful: what the identity attached on this connection
	c2d   *amqp1.Link   // the device's C2D (a module's input) receiver
	// seenCredit is the c2d link's credit as the hub last saw it.
	seenCredit uint32
	methods    *amqp1.Link   // its method request receiver
	twin       *amqp1.Link   // its twin response receiver
	desired    bool          // it subscribed to desired-property notifications
	changed    chan struct{} // closed when a receiver is set; nil until someone waits
	closed     bool
}

func (dc *devConn) isClosed() bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	return dc.closed
}

// setLink makes l the device's receiver of a kind and tells the core.
func (dc *devConn) setLink(p **amqp1.Link, l *amqp1.Link) {
	dc.mu.Lock()
	*p = l
	if p == &dc.c2d {
		dc.seenCredit = 0
	}
	if dc.changed != nil {
		close(dc.changed)
		dc.changed = nil
	}
	dc.mu.Unlock()
	dc.s.Changed()
}

// release forgets an ended link; the identity's session ends with its
// last link.
func (dc *devConn) release(l *amqp1.Link, err error) {
	dc.mu.Lock()
	i := slices.Index(dc.links, l)
	if i < 0 {
		dc.mu.Unlock()
		return
	}
	dc.links = slices.Delete(dc.links, i, i+1)
	for _, p := range []**amqp1.Link{&dc.c2d, &dc.methods, &dc.twin} {
		if *p == l {
			*p = nil
		}
	}
	if dc.twin == nil {
		dc.desired = false
	}
	last := len(dc.links) == 0
	dc.mu.Unlock()
	if !last {
		dc.s.Changed()
		return
	}
	cs := dc.cs
	cs.mu.Lock()
	if cs.devices[dc.id] == dc {
		dc.mu.Lock()
		last = len(dc.links) == 0
		dc.mu.Unlock()
		if last {
			delete(cs.devices, dc.id)
		}
	}
	cs.mu.Unlock()
	if last {
		<-dc.attached
		dc.s.Detach(err)
	}
}

// receiver returns the device's current receiver of a kind, waiting up
// to replyWait for one (a device may send a twin request before its
// receiver is attached).
func (dc *devConn) receiver(ctx context.Context, p **amqp1.Link) *amqp1.Link {
	timeout := time.NewTimer(replyWait)
	defer timeout.Stop()
	for {
		dc.mu.Lock()
		l := *p
		if l == nil && dc.changed == nil {
			dc.changed = make(chan struct{})
		}
		ch := dc.changed
		dc.mu.Unlock()
		if l != nil {
			return l
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-timeout.C:
			return nil
		}
	}
}

// Listening reports what the device attached receivers for (for C2D:
// that it has credit left).
func (dc *devConn) Listening(f core.Feature) bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	switch f {
	case core.Methods:
		return dc.methods != nil
	case core.Desired:
		return dc.twin != nil && dc.desired
	}
	return dc.c2d != nil && dc.c2d.Credit() > 0
}

// Close ends the identity's links with the condition IoT Hub gives for
// reason: amqp:unauthorized-access for an expired token, amqp:link:stolen
// when the identity connected again elsewhere, else
// amqp:link:detach-forced.
func (dc *devConn) Close(reason error) {
	dc.mu.Lock()
	if dc.closed {
		dc.mu.Unlock()
		return
	}
	dc.closed = true
	links := slices.Clone(dc.links)
	dc.mu.Unlock()
	e := &amqp1.Error{Condition: amqp1.ErrCondDetachForced, Description: reason.Error()}
	switch {
	case errors.Is(reason, core.ErrTokenExpired):
		e.Condition = amqp1.ErrCondUnauthorizedAccess
		e.Description = "the SAS token of " + identityPath(dc.id) + " expired; put a new token on $cbs before it expires to keep the links"
	case errors.Is(reason, core.ErrReplaced):
		e.Condition = amqp1.ErrCondStolen
	}
	for _, l := range links {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			_ = l.Close(ctx, e)
		}()
	}
}
