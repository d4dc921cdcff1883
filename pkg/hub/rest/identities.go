package rest

import (
	"net/http"
	"strconv"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// presenceOf returns the connection fields of an identity.
func (h *Handler) presenceOf(deviceID, moduleID string) (state string, since, last iothub.Time) {
	if h.presence == nil {
		return iothub.Disconnected, iothub.Time{}, iothub.Time{}
	}
	connected, s, l := h.presence.State(deviceID, moduleID)
	state = iothub.Disconnected
	if connected {
		state = iothub.Connected
	}
	return state, iothub.Time{Time: s}, iothub.Time{Time: l}
}

func (h *Handler) decorateDevice(d *iothub.Device) *iothub.Device {
	d.ConnectionState, d.ConnectionStateUpdatedTime, d.LastActivityTime = h.presenceOf(d.DeviceID, "")
	return d
}

func (h *Handler) decorateModule(m *iothub.Module) *iothub.Module {
	m.ConnectionState, m.ConnectionStateUpdatedTime, m.LastActivityTime = h.presenceOf(m.DeviceID, m.ModuleID)
	return m
}

func (h *Handler) listDevices(q *request) {
	top := maxTop
	if s := q.r.URL.Query().Get("top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			h.writeError(q.w, newError(registry.ErrArgumentInvalid, "top must be a positive number"))
			return
		}
		top = min(n, maxTop)
	}
	ds, err := h.store.Devices(top)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	for _, d := range ds {
		h.decorateDevice(d)
	}
	h.writeJSON(q.w, http.StatusOK, ds, "")
}

func (h *Handler) getDevice(q *request) {
	d, err := h.store.Device(q.deviceID)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateDevice(d), d.Etag)
}

// putDevice creates a device (no If-Match; an existing id is 409
// DeviceAlreadyExists, as IoT Hub) or updates one (If-Match "*" or its
// etag).
func (h *Handler) putDevice(q *request) {
	var d iothub.Device
	if !h.readJSON(q, maxIdentityBody, &d) {
		return
	}
	if d.DeviceID == "" {
		d.DeviceID = q.deviceID
	}
	if d.DeviceID != q.deviceID {
		h.writeError(q.w, newError(registry.ErrArgumentInvalid, "the deviceId in the body does not match the path"))
		return
	}
	var out *iothub.Device
	var err error
	if ifMatch := q.r.Header.Get("If-Match"); ifMatch != "" {
		out, err = h.store.UpdateDevice(&d, ifMatch)
	} else {
		out, err = h.store.CreateDevice(&d)
	}
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateDevice(out), out.Etag)
}

func (h *Handler) deleteDevice(q *request) {
	if err := h.store.DeleteDevice(q.deviceID, ifMatch(q.r)); err != nil {
		h.fail(q.w, err)
		return
	}
	q.w.WriteHeader(http.StatusNoContent)
}

// ifMatch is the If-Match header, "*" when absent (IoT Hub requires
// it on DELETE; the emulator is lenient).
func ifMatch(r *http.Request) string {
	if v := r.Header.Get("If-Match"); v != "" {
		return v
	}
	return "*"
}

func (h *Handler) listModules(q *request) {
	ms, err := h.store.Modules(q.deviceID)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	for _, m := range ms {
		h.decorateModule(m)
	}
	h.writeJSON(q.w, http.StatusOK, ms, "")
}

func (h *Handler) getModule(q *request) {
	m, err := h.store.Module(q.deviceID, q.moduleID)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateModule(m), m.Etag)
}

func (h *Handler) putModule(q *request) {
	var m iothub.Module
	if !h.readJSON(q, maxIdentityBody, &m) {
		return
	}
	if m.DeviceID == "" {
		m.DeviceID = q.deviceID
	}
	if m.ModuleID == "" {
		m.ModuleID = q.moduleID
	}
	if m.DeviceID != q.deviceID || m.ModuleID != q.moduleID {
		h.writeError(q.w, newError(registry.ErrArgumentInvalid, "the deviceId or moduleId in the body does not match the path"))
		return
	}
	var out *iothub.Module
	var err error
	if im := q.r.Header.Get("If-Match"); im != "" {
		out, err = h.store.UpdateModule(&m, im)
	} else {
		out, err = h.store.CreateModule(&m)
	}
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateModule(out), out.Etag)
}

func (h *Handler) deleteModule(q *request) {
	if err := h.store.DeleteModule(q.deviceID, q.moduleID, ifMatch(q.r)); err != nil {
		h.fail(q.w, err)
		return
	}
	q.w.WriteHeader(http.StatusNoContent)
}

// purgeCommands empties a device's cloud-to-device queue and answers
// IoT Hub's PurgeMessageQueueResult.
func (h *Handler) purgeCommands(q *request) {
	n, err := h.store.PurgeC2D(q.deviceID, "")
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, map[string]any{
		"totalMessagesPurged": n,
		"deviceId":            q.deviceID,
		"moduleId":            nil,
	}, "")
}

func (h *Handler) deviceStats(q *request) {
	st, err := h.store.Stats()
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, st, "")
}

func (h *Handler) serviceStats(q *request) {
	n := 0
	if h.presence != nil {
		n = h.presence.Connected()
	}
	h.writeJSON(q.w, http.StatusOK, map[string]int{"connectedDeviceCount": n}, "")
}
