package amqp1

import (
	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Symbol is an AMQP symbol. Maps with symbol keys (filters, properties)
// and capabilities use it.
type Symbol = encoding.Symbol

// UUID is an AMQP uuid.
type UUID = encoding.UUID

// Char is an AMQP char.
type Char = encoding.Char

// Described is an AMQP described value; source filter values are
// described values.
type Described = encoding.Described

// Role is the role of an end of a link.
type Role bool

// Roles. A Link's Role is this side's role: RoleReceiver when the peer
// attached as a sender.
const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

// String returns "sender" or "receiver".
func (r Role) String() string {
	if r == RoleReceiver {
		return "receiver"
	}
	return "sender"
}

// SenderSettleMode is the settlement policy of a link's sender.
type SenderSettleMode uint8

// Sender settle modes.
const (
	// SenderSettleModeUnsettled: every delivery is sent unsettled.
	SenderSettleModeUnsettled SenderSettleMode = 0
	// SenderSettleModeSettled: every delivery is sent settled (fire and forget).
	SenderSettleModeSettled SenderSettleMode = 1
	// SenderSettleModeMixed: the sender chooses per delivery (the default).
	SenderSettleModeMixed SenderSettleMode = 2
)

// ReceiverSettleMode is the settlement policy of a link's receiver.
type ReceiverSettleMode uint8

// Receiver settle modes.
const (
	// ReceiverSettleModeFirst: the receiver settles first (the default).
	ReceiverSettleModeFirst ReceiverSettleMode = 0
	// ReceiverSettleModeSecond: the receiver settles only after the sender.
	ReceiverSettleModeSecond ReceiverSettleMode = 1
)

// Source is a link's source terminus as the peer sent it in its attach.
type Source struct {
	// Address is the source node's address (may be empty for dynamic nodes).
	Address string
	// Durable is the terminus durability: 0 none, 1 configuration, 2 unsettled-state.
	Durable uint32
	// ExpiryPolicy is e.g. "session-end" (the default when empty).
	ExpiryPolicy Symbol
	// Timeout is the expiry timeout in seconds.
	Timeout uint32
	// Dynamic asks the server to create a node and choose its address.
	// Handler.Attach may set Address before returning.
	Dynamic bool
	// DynamicNodeProperties are the properties requested for a dynamic node.
	DynamicNodeProperties map[Symbol]any
	// DistributionMode is "move" or "copy", if given.
	DistributionMode Symbol
	// Filter is the filter set: filter name → filter, usually a
	// Described value. See Selector.
	Filter map[Symbol]any
	// Outcomes are the outcomes the sender supports.
	Outcomes []Symbol
	// Capabilities are the source's extension capabilities.
	Capabilities []Symbol
}

// Selector filter names used by Event Hubs and go-amqp's
// NewSelectorFilter.
const (
	SelectorFilterName = Symbol("apache.org:selector-filter:string")
	SelectorFilterCode = uint64(0x0000468C00000004)
)

// Selector returns the string of the source's selector filter (a filter
// described by SelectorFilterName or SelectorFilterCode), such as
// "amqp.annotation.x-opt-offset > '123'". It reports false when there is
// none. A nil Source has none.
func (s *Source) Selector() (string, bool) {
	if s == nil {
		return "", false
	}
	for _, f := range s.Filter {
		d, ok := f.(Described)
		if !ok {
			continue
		}
		if d.Descriptor != SelectorFilterName && d.Descriptor != SelectorFilterCode {
			continue
		}
		if v, ok := d.Value.(string); ok {
			return v, true
		}
	}
	return "", false
}

// Target is a link's target terminus as the peer sent it in its attach.
type Target struct {
	// Address is the target node's address (may be empty for dynamic nodes).
	Address string
	// Durable is the terminus durability: 0 none, 1 configuration, 2 unsettled-state.
	Durable uint32
	// ExpiryPolicy is e.g. "session-end" (the default when empty).
	ExpiryPolicy Symbol
	// Timeout is the expiry timeout in seconds.
	Timeout uint32
	// Dynamic asks the server to create a node and choose its address.
	// Handler.Attach may set Address before returning.
	Dynamic bool
	// DynamicNodeProperties are the properties requested for a dynamic node.
	DynamicNodeProperties map[Symbol]any
	// Capabilities are the target's extension capabilities.
	Capabilities []Symbol
}

func sourceFromFrame(s *frames.Source) *Source {
	if s == nil {
		return nil
	}
	return &Source{Address: s.Address, Durable: s.Durable, ExpiryPolicy: s.ExpiryPolicy, Timeout: s.Timeout,
		Dynamic: s.Dynamic, DynamicNodeProperties: s.DynamicNodeProperties, DistributionMode: s.DistributionMode,
		Filter: s.Filter, Outcomes: s.Outcomes, Capabilities: s.Capabilities}
}

func (s *Source) toFrame() *frames.Source {
	if s == nil {
		return nil
	}
	return &frames.Source{Address: s.Address, Durable: s.Durable, ExpiryPolicy: s.ExpiryPolicy, Timeout: s.Timeout,
		Dynamic: s.Dynamic, DynamicNodeProperties: s.DynamicNodeProperties, DistributionMode: s.DistributionMode,
		Filter: s.Filter, Outcomes: s.Outcomes, Capabilities: s.Capabilities}
}

func targetFromFrame(t *frames.Target) *Target {
	if t == nil {
		return nil
	}
	return &Target{Address: t.Address, Durable: t.Durable, ExpiryPolicy: t.ExpiryPolicy, Timeout: t.Timeout,
		Dynamic: t.Dynamic, DynamicNodeProperties: t.DynamicNodeProperties, Capabilities: t.Capabilities}
}

func (t *Target) toFrame() *frames.Target {
	if t == nil {
		return nil
	}
	return &frames.Target{Address: t.Address, Durable: t.Durable, ExpiryPolicy: t.ExpiryPolicy, Timeout: t.Timeout,
		Dynamic: t.Dynamic, DynamicNodeProperties: t.DynamicNodeProperties, Capabilities: t.Capabilities}
}

func symbolsToStrings(s []Symbol) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}
