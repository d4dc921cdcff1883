package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/core"
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
	status, res, err := m.h.InvokeMethod(ctx, deviceID, moduleID, name, payload, connectTimeout, responseTimeout)
	switch {
	case errors.Is(err, core.ErrDeviceNotOnline):
		err = fmt.Errorf("%w: %w", rest.ErrDeviceNotOnline, err)
	case errors.Is(err, core.ErrMethodTimeout):
		err = fmt.Errorf("%w: %w", rest.ErrTimeout, err)
	}
	return status, res, err
}

type hubPresence struct{ h *Hub }

func (p hubPresence) State(deviceID, moduleID string) (bool, time.Time, time.Time) {
	return p.h.core.State(deviceID, moduleID)
}

func (p hubPresence) Connected() int { return p.h.Connected() }
