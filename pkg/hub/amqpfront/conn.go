package amqpfront

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Node names (link addresses after nodePath, lower-cased).
const (
	nodeCBS        = "$cbs"
	nodeManagement = "$management"
	nodeC2D        = "messages/devicebound"
	nodeFeedback   = "messages/servicebound/feedback"
	// nodeFileNotifications is where file upload notifications are
	// received.
	nodeFileNotifications = "messages/servicebound/filenotifications"
	nodeEvents            = "messages/events"
)

// closeTimeout bounds the wait for the peer's detach when the front
// closes a link on its own (token expiry, a stolen partition).
const closeTimeout = 5 * time.Second

// conn is the state of one AMQP connection: the tokens the peer put and
// the links they authorize, and the links replies go to.
type conn struct {
	f  *Front
	nc net.Conn
	// dps is the provisioning client SASL PLAIN authenticated, or nil.
	dps *dpsIdentity

	mu     sync.Mutex
	closed bool
	grants map[string]*grant // by grant.key
	// principal is the Entra ID principal of the last bearer token put
	// on $cbs, nil for none.
	principal *auth.Principal
	// authorized holds each link accepted on a grant.
	authorized map[*amqp1.Link]linkAuth
	// replies holds the peer's receivers on $cbs and $management, newest
	// last; repliesChanged is closed and replaced when one is added.
	replies        map[string][]*amqp1.Link
	repliesChanged chan struct{}
	// devices are the identities with links on this connection.
	devices map[core.Identity]*devConn
}

// grant is what a verified credential authorizes: links whose resource
// path starts with path, needing no more than rights, until expiry.
type grant struct {
	key    string   // strings.Join(path, "/"), the grant's identity on the connection
	path   []string // lower-case segments; empty means the whole hub
	policy string
	rights registry.Rights
	expiry time.Time // zero: never
	timer  Timer
	// device: the grant of a device's own token (not a module's or a
	// policy's).
	device bool
	// x509: the grant of the connection's client certificate.
	x509 bool
}

// linkAuth is what an authorized link needs and the grant it holds.
type linkAuth struct {
	key      string   // the grant's key
	resource []string // the link's resource, as segments
	need     registry.Rights
}

func (f *Front) newConn(c *amqp1.Conn, nc net.Conn) amqp1.Handler {
	cs := &conn{
		f:              f,
		nc:             nc,
		grants:         map[string]*grant{},
		authorized:     map[*amqp1.Link]linkAuth{},
		replies:        map[string][]*amqp1.Link{},
		repliesChanged: make(chan struct{}),
	}
	if r := c.SASL(); r != nil && r.Mechanism == amqp1.SASLPlain {
		// Serve's Authenticate has accepted these credentials; take
		// what they authorize (a failure here means they changed in
		// between, and the links will simply be refused).
		if id, ok, err := f.authenticateDPS(nc, r); ok {
			if err == nil {
				cs.dps = id
			}
		} else if g, err := f.plainGrant(r); err == nil {
			cs.addGrant(g)
		}
	}
	context.AfterFunc(c.Context(), cs.shutdown)
	return cs
}

// shutdown stops the expiry timers once the connection has ended.
func (cs *conn) shutdown() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.closed = true
	for _, g := range cs.grants {
		if g.timer != nil {
			g.timer.Stop()
		}
	}
	clear(cs.grants)
	clear(cs.authorized)
}

// Attach routes a link by its address (case-insensitive, with or
// without an amqps://host[:port] prefix).
func (cs *conn) Attach(ctx context.Context, l *amqp1.Link) error {
	addr := l.Address()
	p := strings.ToLower(nodePath(addr))
	log := cs.f.log.With("link", l.Name(), "address", addr, "role", l.Role().String())
	if scope, regID, ok := dpsAddress(nodePath(addr)); ok && cs.f.opts.DPS != nil {
		return cs.attachDPS(ctx, l, scope, regID)
	}
	if id, ch, ok := deviceAddress(addr); ok {
		return cs.attachDevice(ctx, l, id, ch)
	}
	if l.Role() == amqp1.RoleReceiver {
		// The peer sends.
		switch {
		case p == nodeCBS:
			go cs.serveCBS(ctx, l)
			return nil
		case cs.isManagement(p):
			if err := cs.authorize(l, cs.f.ehName+"/"+nodeManagement, registry.ServiceConnect); err != nil {
				return err
			}
			go cs.serveManagement(ctx, l)
			return nil
		case p == nodeC2D:
			if err := cs.authorize(l, nodeC2D, registry.ServiceConnect); err != nil {
				return err
			}
			log.Debug("amqp c2d sender attached")
			go cs.serveC2D(ctx, l)
			return nil
		}
		return notFound(addr)
	}
	// The peer receives.
	switch {
	case p == nodeCBS:
		cs.addReply(nodeCBS, l)
		return nil
	case cs.isManagement(p):
		if err := cs.authorize(l, cs.f.ehName+"/"+nodeManagement, registry.ServiceConnect); err != nil {
			return err
		}
		cs.addReply(nodeManagement, l)
		return nil
	case p == nodeFeedback:
		if err := cs.authorize(l, nodeFeedback, registry.ServiceConnect); err != nil {
			return err
		}
		log.Debug("amqp feedback receiver attached")
		go cs.serveQueue(ctx, l, feedbackQueue{cs.f})
		return nil
	case p == nodeFileNotifications:
		if err := cs.authorize(l, nodeFileNotifications, registry.ServiceConnect); err != nil {
			return err
		}
		log.Debug("amqp file notification receiver attached")
		go cs.serveQueue(ctx, l, fileQueue{cs.f})
		return nil
	case p == nodeEvents || strings.HasPrefix(p, nodeEvents+"/"):
		if err := cs.authorize(l, p, registry.ServiceConnect); err != nil {
			return err
		}
		log.Debug("amqp receiver redirected to the event hub")
		// IoT Hub answers the attach with neither source nor target
		// and detaches with the redirect, so that go-amqp returns it
		// from NewReceiver.
		return cs.f.redirect(nodePath(addr))
	}
	if key, ok, err := cs.f.partitionOf(p); ok {
		if err := cs.authorize(l, p, registry.ServiceConnect); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		return cs.f.attachPartition(ctx, l, key, log)
	}
	return notFound(addr)
}

// isManagement reports whether a node path is the Event Hub's
// management node: "$management" or "{eventhub}/$management".
func (cs *conn) isManagement(p string) bool {
	return p == nodeManagement || p == strings.ToLower(cs.f.ehName)+"/"+nodeManagement
}

func notFound(addr string) *amqp1.Error {
	return &amqp1.Error{Condition: amqp1.ErrCondNotFound, Description: "no node " + addr + " on this IoT hub"}
}

// addGrant records a verified credential. A grant for the same
// resource replaces the earlier one (a renewed token), keeping its
// links.
func (cs *conn) addGrant(g *grant) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return
	}
	if old := cs.grants[g.key]; old != nil && old.timer != nil {
		old.timer.Stop()
	}
	cs.grants[g.key] = g
	if !g.expiry.IsZero() {
		g.timer = cs.f.opts.AfterFunc(max(g.expiry.Sub(cs.f.now()), 0), func() { cs.expire(g) })
	}
	cs.renewDevices(g)
}

// expire ends a grant whose token expired without being renewed. The
// links it authorized move to another unexpired grant that covers
// them, if any; the others are closed with amqp:unauthorized-access.
func (cs *conn) expire(g *grant) {
	cs.mu.Lock()
	if cs.grants[g.key] != g {
		cs.mu.Unlock()
		return
	}
	delete(cs.grants, g.key)
	now := cs.f.now()
	var links []*amqp1.Link
	for l, a := range cs.authorized {
		if a.key != g.key {
			continue
		}
		if o, _ := cs.bestGrant(a.resource, a.need, now); o != nil {
			a.key = o.key
			cs.authorized[l] = a
			continue
		}
		links = append(links, l)
		delete(cs.authorized, l)
	}
	cs.mu.Unlock()
	cs.f.log.Debug("amqp token expired", "policy", g.policy, "resource", g.key, "closing", len(links))
	// IoT Hub closes such links with amqp:unauthorized-access (the
	// Java device SDK reports it as AmqpUnauthorizedAccessException,
	// Azure/azure-iot-sdk-java issue #365).
	e := &amqp1.Error{Condition: amqp1.ErrCondUnauthorizedAccess, Description: fmt.Sprintf(
		"the token that authorized this link expired at %s; put a new token on $cbs before it expires to keep the link",
		g.expiry.UTC().Format(time.RFC3339))}
	for _, l := range links {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			_ = l.Close(ctx, e)
		}()
	}
}

// bestGrant returns the unexpired grant that covers resource with the
// rights need and expires last (the most specific one among equals),
// and whether some grant covered it without the rights. Call with
// cs.mu held.
func (cs *conn) bestGrant(resource []string, need registry.Rights, now time.Time) (best *grant, lacking bool) {
	for _, g := range cs.grants {
		if !g.expiry.IsZero() && !now.Before(g.expiry) || !hasPrefix(resource, g.path) {
			continue
		}
		if g.device && len(resource) > 2 && resource[2] == "modules" {
			// A device's own token does not act for its modules, as on
			// IoT Hub, where a module has keys of its own.
			continue
		}
		if !g.rights.Has(need) {
			lacking = true
			continue
		}
		if best == nil || laterGrant(g, best) {
			best = g
		}
	}
	return best, lacking
}

// laterGrant reports whether a outlives b, or is more specific when
// they expire together.
func laterGrant(a, b *grant) bool {
	switch {
	case a.expiry.Equal(b.expiry):
		return len(a.path) > len(b.path)
	case a.expiry.IsZero():
		return true
	case b.expiry.IsZero():
		return false
	}
	return a.expiry.After(b.expiry)
}

// authorize accepts l if an unexpired grant of this connection covers
// resource (a node path) with the rights need, and then keeps l with
// that grant so that its expiry closes l. Otherwise it returns the
// amqp:unauthorized-access error that refuses the link.
func (cs *conn) authorize(l *amqp1.Link, resource string, need registry.Rights) *amqp1.Error {
	if e := cs.authorizeLink(l, resource, need); e != nil {
		return e
	}
	go func() {
		<-l.Done()
		cs.forget(l)
	}()
	return nil
}

// forget drops an ended link from the authorized ones.
func (cs *conn) forget(l *amqp1.Link) {
	cs.mu.Lock()
	delete(cs.authorized, l)
	cs.mu.Unlock()
}

// authorizeLink is authorize for a caller that calls forget itself
// once l has ended (and so needs no goroutine of its own to wait).
func (cs *conn) authorizeLink(l *amqp1.Link, resource string, need registry.Rights) *amqp1.Error {
	segs := segments(resource)
	cs.mu.Lock()
	best, lacking := cs.bestGrant(segs, need, cs.f.now())
	if best != nil {
		cs.authorized[l] = linkAuth{key: best.key, resource: segs, need: need}
	}
	role := cs.bearerRefusal(resource)
	cs.mu.Unlock()
	if best == nil {
		desc := "no unexpired token put on $cbs (or given with SASL PLAIN) covers " + resource
		switch {
		case role != "":
			desc = role
		case lacking:
			desc = "the shared access policy of the token for " + resource + " lacks " + need.String()
		}
		return &amqp1.Error{Condition: amqp1.ErrCondUnauthorizedAccess, Description: desc}
	}
	return nil
}

// addReply records a peer receiver that request replies can go to.
func (cs *conn) addReply(node string, l *amqp1.Link) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	links := cs.replies[node][:0]
	for _, o := range cs.replies[node] {
		if o.Err() == nil {
			links = append(links, o)
		}
	}
	cs.replies[node] = append(links, l)
	close(cs.repliesChanged)
	cs.repliesChanged = make(chan struct{})
}

// replyWait bounds the wait for the receiver a reply goes to, for
// peers that send a request before their reply link is attached.
const replyWait = 10 * time.Second

// replyLink returns the peer's receiver on node for a request whose
// reply-to is replyTo: the one whose target address or name is
// replyTo, else the newest one, waiting up to replyWait for one.
func (cs *conn) replyLink(ctx context.Context, node, replyTo string) *amqp1.Link {
	timeout := time.NewTimer(replyWait)
	defer timeout.Stop()
	for {
		cs.mu.Lock()
		var match, newest *amqp1.Link
		for _, l := range cs.replies[node] {
			if l.Err() != nil {
				continue
			}
			newest = l
			if replyTo != "" && (l.Name() == replyTo || l.Target() != nil && l.Target().Address == replyTo) {
				match = l
			}
		}
		changed := cs.repliesChanged
		cs.mu.Unlock()
		if match != nil {
			return match
		}
		if newest != nil {
			return newest
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-timeout.C:
			return nil
		}
	}
}
