package core

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// TwinGet reads the device's twin for a device's GET: status 200 with
// {"desired":{...},"reported":{...}}, or 500 and no body. It runs on the
// caller's goroutine, so a transport that calls it in the order of the
// device's requests answers them in that order.
func (s *Session) TwinGet() (status int, body []byte) {
	t, err := s.c.reg.Twin(s.DeviceID, s.ModuleID)
	if err != nil {
		s.c.log.Warn("twin get failed", "device", s.DeviceID, "module", s.ModuleID, "err", err)
		return twinErrorStatus(err), nil
	}
	body, _ = json.Marshal(struct {
		Desired  json.RawMessage `json:"desired"`
		Reported json.RawMessage `json:"reported"`
	}{t.Properties.Desired, t.Properties.Reported})
	return 200, body
}

// PatchReported applies a device's reported-properties patch: status
// 204 with the new $version, 400 for a patch the registry refuses, or
// another error status.
func (s *Session) PatchReported(patch []byte) (status int, version int64) {
	v, err := s.c.reg.PatchReported(s.DeviceID, s.ModuleID, patch)
	if err != nil {
		s.c.log.Info("reported patch refused", "device", s.DeviceID, "module", s.ModuleID, "err", err)
		return twinErrorStatus(err), 0
	}
	return 204, v
}

// DesiredChanged sends a desired-properties patch to the device or
// module when it is connected and listens for desired updates. The
// patch gets "$version" as IoT Hub sends it.
func (c *Core) DesiredChanged(deviceID, moduleID string, patch json.RawMessage, version int64) {
	s := c.sessions.get(Identity{deviceID, moduleID}.Key())
	if s == nil || !s.conn.Listening(Desired) {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(patch, &m); err != nil || m == nil {
		m = map[string]json.RawMessage{}
	}
	m["$version"] = json.RawMessage(strconv.FormatInt(version, 10))
	body, _ := json.Marshal(m)
	if err := s.conn.SendDesired(version, body); err != nil {
		c.log.Debug("desired patch not sent", "device", deviceID, "module", moduleID, "err", err)
	}
}

// twinErrorStatus is the status of a twin request the registry
// refused: 400 when the request was malformed, else 500.
func twinErrorStatus(err error) int {
	var re *registry.Error
	if errors.As(err, &re) && re.HTTPStatus() == 400 {
		return 400
	}
	return 500
}
