package hub

import (
	"fmt"

	"github.com/iotctl/iotctl/pkg/hub/seed"
)

// applySeed applies Options.Seed to the registry and logs what it did
// (ids only, never keys).
func (h *Hub) applySeed() error {
	s := h.opts.Seed
	if s == nil {
		return nil
	}
	res, err := s.Apply(h.reg)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.log.Info("seed applied", "file", s.File, "created", len(res.Created), "updated", len(res.Updated), "unchanged", len(res.Unchanged))
	if len(res.Created)+len(res.Updated) > 0 {
		h.log.Debug("seed changes", "created", res.Created, "updated", res.Updated)
	}
	return nil
}

// applyDPSSeed applies the seed's enrollments and enrollment groups to
// the hub's DPS, once it has started, and logs what it did (ids only).
func (h *Hub) applyDPSSeed() error {
	s := h.opts.Seed
	if s == nil || len(s.Enrollments)+len(s.EnrollmentGroups) == 0 {
		return nil
	}
	res := &seed.Result{}
	if err := s.ApplyDPS(h.dps, res); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.log.Info("seed enrollments applied", "file", s.File, "created", len(res.Created), "updated", len(res.Updated), "unchanged", len(res.Unchanged))
	return nil
}
