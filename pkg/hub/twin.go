package hub

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/iotctl/iotctl/pkg/message"
)

// twinGet answers a device's twin GET with 200 and
// {"desired":{...},"reported":{...}}.
func (h *Hub) twinGet(s *session, rid string) {
	desired, reported, err := h.store.twinProperties(s.deviceID, s.moduleID)
	if err != nil {
		h.log.Warn("twin get failed", "device", s.deviceID, "module", s.moduleID, "err", err)
		logClosed(h.log, "twin response", s.write(message.TwinResponseTopic(twinErrorStatus(err), rid, 0), nil, 0, 0))
		return
	}
	body, _ := json.Marshal(struct {
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	}{desired, reported})
	logClosed(h.log, "twin response", s.write(message.TwinResponseTopic(200, rid, 0), body, 0, 0))
}

// twinPatchReported applies a device's reported-properties patch and
// answers 204 with the new $version, or 400 for a bad patch.
func (h *Hub) twinPatchReported(s *session, rid string, body []byte) {
	version, err := h.store.patchReported(s.deviceID, s.moduleID, body)
	if err != nil {
		h.log.Info("reported patch refused", "device", s.deviceID, "module", s.moduleID, "err", err)
		logClosed(h.log, "twin response", s.write(message.TwinResponseTopic(twinErrorStatus(err), rid, 0), nil, 0, 0))
		return
	}
	logClosed(h.log, "twin response", s.write(message.TwinResponseTopic(204, rid, version), nil, 0, 0))
}

// DesiredChanged sends a desired-properties patch to the device or
// module when it is connected and subscribed to desired updates. The
// patch gets "$version" as IoT Hub sends it.
func (h *Hub) DesiredChanged(deviceID, moduleID string, patch json.RawMessage, version int64) {
	s := h.sessions.get(clientKey(deviceID, moduleID))
	if s == nil || !s.subscribed(message.TwinDesiredFilter) {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(patch, &m); err != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	m["$version"] = json.RawMessage(strconv.FormatInt(version, 10))
	body, _ := json.Marshal(m)
	logClosed(h.log, "desired patch", s.write(message.TwinDesiredTopic(version), body, 0, 0))
}

// errBadTwin marks a twin request the store refused as malformed.
var errBadTwin = errors.New("hub: bad twin patch")

func twinErrorStatus(err error) int {
	if errors.Is(err, errBadTwin) {
		return 400
	}
	return 500
}
