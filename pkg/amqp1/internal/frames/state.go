package frames

import (
	"fmt"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

// DeliveryState is one of Received, Accepted, Rejected, Released,
// Modified, or Unknown for states from extensions (e.g. transactions).
type DeliveryState interface {
	append(b []byte) ([]byte, error)
	isDeliveryState()
}

// Received is the non-terminal received state (part 3.4.1).
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

// Accepted is the accepted outcome.
type Accepted struct{}

// Rejected is the rejected outcome.
type Rejected struct{ Error *Error }

// Released is the released outcome.
type Released struct{}

// Modified is the modified outcome.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[encoding.Symbol]any
}

// Unknown is a delivery state this package does not model.
type Unknown struct{ Value encoding.Described }

func (*Received) isDeliveryState() {}
func (*Accepted) isDeliveryState() {}
func (*Rejected) isDeliveryState() {}
func (*Released) isDeliveryState() {}
func (*Modified) isDeliveryState() {}
func (*Unknown) isDeliveryState()  {}

func (s *Received) append(b []byte) ([]byte, error) {
	f := openFields(b, codeReceived)
	f.uint(s.SectionNumber)
	f.ulong(s.SectionOffset)
	return f.close()
}

func (s *Accepted) append(b []byte) ([]byte, error) {
	return append(encoding.AppendDescriptor(b, codeAccepted), encoding.CodeList0), nil
}

func (s *Rejected) append(b []byte) ([]byte, error) {
	f := openFields(b, codeRejected)
	f.optError(s.Error)
	return f.close()
}

func (s *Released) append(b []byte) ([]byte, error) {
	return append(encoding.AppendDescriptor(b, codeReleased), encoding.CodeList0), nil
}

func (s *Modified) append(b []byte) ([]byte, error) {
	f := openFields(b, codeModified)
	f.optBool(s.DeliveryFailed)
	f.optBool(s.UndeliverableHere)
	f.optSymMap(s.MessageAnnotations)
	return f.close()
}

func (s *Unknown) append(b []byte) ([]byte, error) { return encoding.AppendAny(b, s.Value) }

func (s *Received) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		s.SectionNumber, err = r.Uint()
	case 1:
		s.SectionOffset, err = r.Ulong()
	default:
		err = r.Skip()
	}
	return err
}

func (s *Rejected) parse(i int, r *encoding.Reader) (err error) {
	if i == 0 {
		s.Error, err = parseError(r)
		return err
	}
	return r.Skip()
}

func (s *Modified) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		s.DeliveryFailed, err = r.Bool()
	case 1:
		s.UndeliverableHere, err = r.Bool()
	case 2:
		s.MessageAnnotations, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

type skipFields struct{}

func (skipFields) parse(_ int, r *encoding.Reader) error { return r.Skip() }

// parseState reads a delivery state or outcome.
func parseState(r *encoding.Reader) (DeliveryState, error) {
	save := *r
	code, sym, err := r.Descriptor()
	if err != nil {
		return nil, err
	}
	if sym != "" {
		code = symbolic[sym]
	}
	var s interface {
		DeliveryState
		parse(int, *encoding.Reader) error
	}
	switch code {
	case codeReceived:
		s = new(Received)
	case codeRejected:
		s = new(Rejected)
	case codeModified:
		s = new(Modified)
	case codeAccepted, codeReleased:
		if _, err := parseFields(r, skipFields{}.parse); err != nil {
			return nil, err
		}
		if code == codeAccepted {
			return &Accepted{}, nil
		}
		return &Released{}, nil
	default:
		*r = save
		v, err := r.Any()
		if err != nil {
			return nil, err
		}
		d, ok := v.(encoding.Described)
		if !ok {
			return nil, fmt.Errorf("%w: delivery state %T", encoding.ErrDecode, v)
		}
		return &Unknown{Value: d}, nil
	}
	if _, err := parseFields(r, s.parse); err != nil {
		return nil, err
	}
	return s, nil
}
