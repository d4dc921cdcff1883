package hub

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/rest"
)

// restHandler is the HTTPS service API over the hub's state.
func (h *Hub) restHandler() (http.Handler, error) {
	return rest.New(&rest.Options{
		Store:    h.reg,
		Auth:     h.auth,
		Methods:  hubMethods{h},
		Presence: hubPresence{h},
		Twins:    h,
		Logger:   h.log.With("component", "rest"),
		Now:      h.now,
	})
}

type hubMethods struct{ h *Hub }

func (m hubMethods) Invoke(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (int, json.RawMessage, error) {
	return m.h.InvokeMethod(ctx, deviceID, moduleID, name, payload, connectTimeout, responseTimeout)
}

type hubPresence struct{ h *Hub }

func (p hubPresence) State(deviceID, moduleID string) (bool, time.Time, time.Time) {
	return p.h.presence(deviceID, moduleID)
}

func (p hubPresence) Connected() int { return p.h.Connected() }
