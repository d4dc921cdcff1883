package hub

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/dps"
)

// startDPS opens the Device Provisioning Service on the hub's store; it
// assigns devices to this hub.
func (h *Hub) startDPS() error {
	s, err := dps.New(&dps.Options{
		Registry:    h.reg,
		HubHostName: h.hostName,
		HostNames:   h.hostSet,
		DesiredChanged: func(deviceID string, patch json.RawMessage, version int64) {
			h.DesiredChanged(deviceID, "", patch, version)
		},
		Logger: h.log.With("component", "dps"),
		Now:    h.now,
	})
	if err != nil {
		return err
	}
	h.dps = s
	return nil
}

// dpsReplyDelay is how long the hub waits before it answers a
// provisioning request over MQTT or AMQP, where the answer is a message
// of its own rather than the response to a request (HTTPS answers at
// once). Azure DPS takes tens to hundreds of milliseconds to answer, and
// the Java provisioning client depends on that: provisioning-device-client
// 2.x publishes a request and only then starts waiting for the answer
// (ContractAPIMqtt.executeProvisioningMessage and
// ProvisioningAmqpOperations: waitLock after the send; the receive
// callback's notifyLock before that wait is lost), so an answer that
// arrives within that gap is never seen and the registration times out
// (10 s for a status poll, 60 s for a register). A local hub answers in
// well under a millisecond; this delay keeps the gap from mattering
// unless the client's thread is held up longer than it.
const dpsReplyDelay = 50 * time.Millisecond

// pauseBeforeDPSReply waits dpsReplyDelay, or until done is closed.
func pauseBeforeDPSReply(done <-chan struct{}) {
	t := time.NewTimer(dpsReplyDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// DPS is the hub's Device Provisioning Service.
func (h *Hub) DPS() *dps.Service { return h.dps }

// DPSConnectionString returns the connection string of the DPS service
// policy provisioningserviceowner: the hub's host name, as the DPS
// service host.
func (h *Hub) DPSConnectionString() (string, error) {
	p, err := h.dps.Policy(dps.OwnerPolicy)
	if err != nil {
		return "", err
	}
	cs := connstr.ConnectionString{Kind: connstr.KindService, HostName: h.hostName, SharedAccessKeyName: p.KeyName, SharedAccessKey: p.PrimaryKey}
	return cs.Format(), nil
}

// connKey is the context key of a request's connection.
type connKey struct{}

// withConn keeps an HTTPS connection in its requests' context, so that
// DPS can read the client certificate of the TLS connection under it
// (http.Server sets Request.TLS only for a *tls.Conn it accepted itself).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// peerCertificates returns the client certificates of r's connection.
func peerCertificates(r *http.Request) []*x509.Certificate {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok {
		return nil
	}
	st, ok := tlsState(c)
	if !ok {
		return nil
	}
	return st.PeerCertificates
}

// routeDPS sends DPS's paths to the DPS handler and the rest to api.
func (h *Hub) routeDPS(api http.Handler) http.Handler {
	d := h.dps.Handler(&dps.HandlerOptions{PeerCertificates: peerCertificates})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dps.IsPath(r.URL.EscapedPath()) {
			d.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}
