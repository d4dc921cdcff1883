package frames

import (
	"math"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

// Roles (part 2.8.1).
const (
	RoleSender   = false
	RoleReceiver = true
)

// Sender settle modes (part 2.8.2).
const (
	SndUnsettled uint8 = 0
	SndSettled   uint8 = 1
	SndMixed     uint8 = 2
)

// Receiver settle modes (part 2.8.3).
const (
	RcvFirst  uint8 = 0
	RcvSecond uint8 = 1
)

// Open is the open performative (part 2.7.1).
type Open struct {
	ContainerID         string
	Hostname            string
	MaxFrameSize        uint32 // default MaxUint32
	ChannelMax          uint16 // default MaxUint16
	IdleTimeout         uint32 // milliseconds, 0 = none
	OutgoingLocales     []encoding.Symbol
	IncomingLocales     []encoding.Symbol
	OfferedCapabilities []encoding.Symbol
	DesiredCapabilities []encoding.Symbol
	Properties          map[encoding.Symbol]any
}

func (o *Open) mandatory() uint32 { return 1 }

func (o *Open) append(b []byte) ([]byte, error) {
	f := openFields(b, codeOpen)
	f.str(o.ContainerID)
	f.optStr(o.Hostname)
	f.uint(o.MaxFrameSize)
	f.ushort(o.ChannelMax)
	f.nonzeroUint(o.IdleTimeout)
	f.optSyms(o.OutgoingLocales)
	f.optSyms(o.IncomingLocales)
	f.optSyms(o.OfferedCapabilities)
	f.optSyms(o.DesiredCapabilities)
	f.optSymMap(o.Properties)
	return f.close()
}

func (o *Open) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.ContainerID, err = r.String()
	case 1:
		o.Hostname, err = r.String()
	case 2:
		o.MaxFrameSize, err = r.Uint()
	case 3:
		o.ChannelMax, err = r.Ushort()
	case 4:
		o.IdleTimeout, err = r.Uint()
	case 5:
		o.OutgoingLocales, err = r.Symbols()
	case 6:
		o.IncomingLocales, err = r.Symbols()
	case 7:
		o.OfferedCapabilities, err = r.Symbols()
	case 8:
		o.DesiredCapabilities, err = r.Symbols()
	case 9:
		o.Properties, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

// Begin is the begin performative (part 2.7.2).
type Begin struct {
	RemoteChannel       *uint16
	NextOutgoingID      uint32
	IncomingWindow      uint32
	OutgoingWindow      uint32
	HandleMax           uint32 // default MaxUint32
	OfferedCapabilities []encoding.Symbol
	DesiredCapabilities []encoding.Symbol
	Properties          map[encoding.Symbol]any
}

func (o *Begin) mandatory() uint32 { return 1<<1 | 1<<2 | 1<<3 }

func (o *Begin) append(b []byte) ([]byte, error) {
	f := openFields(b, codeBegin)
	if o.RemoteChannel == nil {
		f.null()
	} else {
		f.ushort(*o.RemoteChannel)
	}
	f.uint(o.NextOutgoingID)
	f.uint(o.IncomingWindow)
	f.uint(o.OutgoingWindow)
	f.uint(o.HandleMax)
	f.optSyms(o.OfferedCapabilities)
	f.optSyms(o.DesiredCapabilities)
	f.optSymMap(o.Properties)
	return f.close()
}

func (o *Begin) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		var v uint16
		v, err = r.Ushort()
		o.RemoteChannel = &v
	case 1:
		o.NextOutgoingID, err = r.Uint()
	case 2:
		o.IncomingWindow, err = r.Uint()
	case 3:
		o.OutgoingWindow, err = r.Uint()
	case 4:
		o.HandleMax, err = r.Uint()
	case 5:
		o.OfferedCapabilities, err = r.Symbols()
	case 6:
		o.DesiredCapabilities, err = r.Symbols()
	case 7:
		o.Properties, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

// Attach is the attach performative (part 2.7.3).
type Attach struct {
	Name                 string
	Handle               uint32
	Role                 bool
	SndSettleMode        uint8 // default SndMixed
	RcvSettleMode        uint8 // default RcvFirst
	Source               *Source
	Target               *Target
	Unsettled            map[any]any
	IncompleteUnsettled  bool
	InitialDeliveryCount *uint32
	MaxMessageSize       uint64 // 0 = no limit
	OfferedCapabilities  []encoding.Symbol
	DesiredCapabilities  []encoding.Symbol
	Properties           map[encoding.Symbol]any
}

func (o *Attach) mandatory() uint32 { return 1 | 1<<1 | 1<<2 }

func (o *Attach) append(b []byte) ([]byte, error) {
	f := openFields(b, codeAttach)
	f.str(o.Name)
	f.uint(o.Handle)
	f.boolean(o.Role)
	f.ubyte(o.SndSettleMode)
	f.ubyte(o.RcvSettleMode)
	if o.Source == nil {
		f.null()
	} else {
		f.body(o.Source.append)
	}
	if o.Target == nil {
		f.null()
	} else {
		f.body(o.Target.append)
	}
	if o.Unsettled == nil {
		f.null()
	} else {
		f.body(func(b []byte) ([]byte, error) { return encoding.AppendAny(b, o.Unsettled) })
	}
	f.optBool(o.IncompleteUnsettled)
	f.optUint(o.InitialDeliveryCount)
	if o.MaxMessageSize == 0 {
		f.null()
	} else {
		f.ulong(o.MaxMessageSize)
	}
	f.optSyms(o.OfferedCapabilities)
	f.optSyms(o.DesiredCapabilities)
	f.optSymMap(o.Properties)
	return f.close()
}

func (o *Attach) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Name, err = r.String()
	case 1:
		o.Handle, err = r.Uint()
	case 2:
		o.Role, err = r.Bool()
	case 3:
		o.SndSettleMode, err = r.Ubyte()
	case 4:
		o.RcvSettleMode, err = r.Ubyte()
	case 5:
		o.Source, err = parseSource(r)
	case 6:
		o.Target, err = parseTarget(r)
	case 7:
		var v any
		if v, err = r.Any(); err == nil {
			o.Unsettled, _ = v.(map[any]any)
		}
	case 8:
		o.IncompleteUnsettled, err = r.Bool()
	case 9:
		var v uint32
		v, err = r.Uint()
		o.InitialDeliveryCount = &v
	case 10:
		o.MaxMessageSize, err = r.Ulong()
	case 11:
		o.OfferedCapabilities, err = r.Symbols()
	case 12:
		o.DesiredCapabilities, err = r.Symbols()
	case 13:
		o.Properties, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

// Flow is the flow performative (part 2.7.4).
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     map[encoding.Symbol]any
}

func (o *Flow) mandatory() uint32 { return 1<<1 | 1<<2 | 1<<3 }

func (o *Flow) append(b []byte) ([]byte, error) {
	f := openFields(b, codeFlow)
	f.optUint(o.NextIncomingID)
	f.uint(o.IncomingWindow)
	f.uint(o.NextOutgoingID)
	f.uint(o.OutgoingWindow)
	f.optUint(o.Handle)
	f.optUint(o.DeliveryCount)
	f.optUint(o.LinkCredit)
	f.optUint(o.Available)
	f.optBool(o.Drain)
	f.optBool(o.Echo)
	f.optSymMap(o.Properties)
	return f.close()
}

func optU32(r *encoding.Reader) (*uint32, error) {
	v, err := r.Uint()
	return &v, err
}

func (o *Flow) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.NextIncomingID, err = optU32(r)
	case 1:
		o.IncomingWindow, err = r.Uint()
	case 2:
		o.NextOutgoingID, err = r.Uint()
	case 3:
		o.OutgoingWindow, err = r.Uint()
	case 4:
		o.Handle, err = optU32(r)
	case 5:
		o.DeliveryCount, err = optU32(r)
	case 6:
		o.LinkCredit, err = optU32(r)
	case 7:
		o.Available, err = optU32(r)
	case 8:
		o.Drain, err = r.Bool()
	case 9:
		o.Echo, err = r.Bool()
	case 10:
		o.Properties, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

// Transfer is the transfer performative (part 2.7.5) with its payload.
// Parse sets DeliveryTag and Payload to parts of the body it was given,
// and the optional fields to the values stored in the Transfer itself
// (one allocation per frame instead of one per field).
type Transfer struct {
	Handle        uint32
	DeliveryID    *uint32
	DeliveryTag   []byte // nil = absent
	MessageFormat *uint32
	Settled       *bool
	More          bool
	RcvSettleMode *uint8
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte

	// what the pointers above point to after Parse
	deliveryID, messageFormat uint32
	settled                   bool
	rcvSettleMode             uint8
}

func (o *Transfer) mandatory() uint32 { return 1 }

func (o *Transfer) append(b []byte) ([]byte, error) {
	f := openFields(b, codeTransfer)
	f.uint(o.Handle)
	f.optUint(o.DeliveryID)
	if o.DeliveryTag == nil {
		f.null()
	} else {
		f.bin(o.DeliveryTag)
	}
	f.optUint(o.MessageFormat)
	if o.Settled == nil {
		f.null()
	} else {
		f.boolean(*o.Settled)
	}
	f.optBool(o.More)
	if o.RcvSettleMode == nil {
		f.null()
	} else {
		f.ubyte(*o.RcvSettleMode)
	}
	if o.State == nil {
		f.null()
	} else {
		f.body(o.State.append)
	}
	f.optBool(o.Resume)
	f.optBool(o.Aborted)
	f.optBool(o.Batchable)
	return f.close()
}

func (o *Transfer) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Handle, err = r.Uint()
	case 1:
		o.deliveryID, err = r.Uint()
		o.DeliveryID = &o.deliveryID
	case 2:
		var v []byte
		if v, err = r.Binary(); err == nil {
			o.DeliveryTag = v[:len(v):len(v)]
			if v == nil {
				o.DeliveryTag = []byte{} // present and empty
			}
		}
	case 3:
		o.messageFormat, err = r.Uint()
		o.MessageFormat = &o.messageFormat
	case 4:
		o.settled, err = r.Bool()
		o.Settled = &o.settled
	case 5:
		o.More, err = r.Bool()
	case 6:
		o.rcvSettleMode, err = r.Ubyte()
		o.RcvSettleMode = &o.rcvSettleMode
	case 7:
		o.State, err = parseState(r)
	case 8:
		o.Resume, err = r.Bool()
	case 9:
		o.Aborted, err = r.Bool()
	case 10:
		o.Batchable, err = r.Bool()
	default:
		err = r.Skip()
	}
	return err
}

// Disposition is the disposition performative (part 2.7.6).
type Disposition struct {
	Role      bool
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

func (o *Disposition) mandatory() uint32 { return 1 | 1<<1 }

func (o *Disposition) append(b []byte) ([]byte, error) {
	f := openFields(b, codeDisposition)
	f.boolean(o.Role)
	f.uint(o.First)
	f.optUint(o.Last)
	f.optBool(o.Settled)
	if o.State == nil {
		f.null()
	} else {
		f.body(o.State.append)
	}
	f.optBool(o.Batchable)
	return f.close()
}

func (o *Disposition) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Role, err = r.Bool()
	case 1:
		o.First, err = r.Uint()
	case 2:
		o.Last, err = optU32(r)
	case 3:
		o.Settled, err = r.Bool()
	case 4:
		o.State, err = parseState(r)
	case 5:
		o.Batchable, err = r.Bool()
	default:
		err = r.Skip()
	}
	return err
}

// Detach is the detach performative (part 2.7.7).
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (o *Detach) mandatory() uint32 { return 1 }

func (o *Detach) append(b []byte) ([]byte, error) {
	f := openFields(b, codeDetach)
	f.uint(o.Handle)
	f.optBool(o.Closed)
	f.optError(o.Error)
	return f.close()
}

func (o *Detach) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		o.Handle, err = r.Uint()
	case 1:
		o.Closed, err = r.Bool()
	case 2:
		o.Error, err = parseError(r)
	default:
		err = r.Skip()
	}
	return err
}

// End is the end performative (part 2.7.8).
type End struct{ Error *Error }

func (o *End) append(b []byte) ([]byte, error) {
	f := openFields(b, codeEnd)
	f.optError(o.Error)
	return f.close()
}

func (o *End) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		o.Error, err = parseError(r)
		return err
	}
	return r.Skip()
}

// Close is the close performative (part 2.7.9).
type Close struct{ Error *Error }

func (o *Close) append(b []byte) ([]byte, error) {
	f := openFields(b, codeClose)
	f.optError(o.Error)
	return f.close()
}

func (o *Close) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		o.Error, err = parseError(r)
		return err
	}
	return r.Skip()
}

// newOpen, newBegin and newAttach return performatives holding the spec
// defaults of the fields a peer may omit; Parse starts from them.
func newOpen() *Open     { return &Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16} }
func newBegin() *Begin   { return &Begin{HandleMax: math.MaxUint32} }
func newAttach() *Attach { return &Attach{SndSettleMode: SndMixed, RcvSettleMode: RcvFirst} }
