package hub

import "fmt"

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
