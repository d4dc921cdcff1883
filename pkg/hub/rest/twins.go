package rest

import (
	"net/http"
	"strconv"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

func (h *Handler) decorateTwin(t *iothub.Twin) *iothub.Twin {
	t.ConnectionState, _, t.LastActivityTime = h.presenceOf(t.DeviceID, t.ModuleID)
	return t
}

func (h *Handler) getTwin(q *request) {
	t, err := h.store.Twin(q.deviceID, q.moduleID)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateTwin(t), t.Etag)
}

func (h *Handler) patchTwin(q *request)   { h.writeTwin(q, false) }
func (h *Handler) replaceTwin(q *request) { h.writeTwin(q, true) }

// writeTwin applies a PATCH (merge) or PUT (replace) of tags and
// desired properties, then tells Twins about the desired change.
func (h *Handler) writeTwin(q *request, replace bool) {
	var u iothub.TwinUpdate
	if !h.readJSON(q, maxTwinBody, &u) {
		return
	}
	im := q.r.Header.Get("If-Match")
	var t *iothub.Twin
	var delta *registry.DesiredDelta
	var err error
	if replace {
		t, delta, err = h.store.ReplaceTwin(q.deviceID, q.moduleID, &u, im)
	} else {
		t, delta, err = h.store.PatchTwin(q.deviceID, q.moduleID, &u, im)
	}
	if err != nil {
		h.fail(q.w, err)
		return
	}
	if delta != nil && h.twins != nil {
		h.twins.DesiredChanged(q.deviceID, q.moduleID, delta.Patch, delta.Version)
	}
	h.writeJSON(q.w, http.StatusOK, h.decorateTwin(t), t.Etag)
}

type queryRequest struct {
	Query string `json:"query"`
}

// query runs POST /devices/query. Results come in pages, as IoT Hub
// pages them: x-ms-max-item-count twins at most (default 100, at most
// 1,000), and an x-ms-continuation header naming the next page, which
// the client sends back in the same header.
func (h *Handler) query(q *request) {
	var body queryRequest
	if !h.readJSON(q, maxQueryBody, &body) {
		return
	}
	limit := defaultQueryPage
	if s := q.r.Header.Get("x-ms-max-item-count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			h.writeError(q.w, newError(registry.ErrArgumentInvalid, "x-ms-max-item-count must be a positive number"))
			return
		}
		limit = min(n, maxQueryPage)
	}
	twins, next, err := h.store.Query(body.Query, q.r.Header.Get("x-ms-continuation"), limit)
	if err != nil {
		h.fail(q.w, err)
		return
	}
	for _, t := range twins {
		h.decorateTwin(t)
	}
	q.w.Header().Set("x-ms-item-type", "Twin")
	if next != "" {
		q.w.Header().Set("x-ms-continuation", next)
	}
	h.writeJSON(q.w, http.StatusOK, twins, "")
}
