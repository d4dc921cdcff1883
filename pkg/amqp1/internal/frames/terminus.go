package frames

import (
	"fmt"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

// Error is the AMQP error type (part 2.8.14).
type Error struct {
	Condition   encoding.Symbol
	Description string
	Info        map[encoding.Symbol]any
}

func (e *Error) append(b []byte) ([]byte, error) {
	f := openFields(b, codeError)
	f.sym(e.Condition)
	f.optStr(e.Description)
	f.optSymMap(e.Info)
	return f.close()
}

func (e *Error) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		e.Condition, err = r.Symbol()
	case 1:
		e.Description, err = r.String()
	case 2:
		e.Info, err = r.SymbolMap()
	default:
		err = r.Skip()
	}
	return err
}

// Source is the source terminus (part 3.5.3).
type Source struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          encoding.Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[encoding.Symbol]any
	DistributionMode      encoding.Symbol
	Filter                map[encoding.Symbol]any
	DefaultOutcome        DeliveryState
	Outcomes              []encoding.Symbol
	Capabilities          []encoding.Symbol
}

func (s *Source) append(b []byte) ([]byte, error) {
	f := openFields(b, codeSource)
	f.optStr(s.Address)
	f.nonzeroUint(s.Durable)
	f.optSym(s.ExpiryPolicy)
	f.nonzeroUint(s.Timeout)
	f.optBool(s.Dynamic)
	f.optSymMap(s.DynamicNodeProperties)
	f.optSym(s.DistributionMode)
	f.optSymMap(s.Filter)
	if s.DefaultOutcome == nil {
		f.null()
	} else {
		f.body(s.DefaultOutcome.append)
	}
	f.optSyms(s.Outcomes)
	f.optSyms(s.Capabilities)
	return f.close()
}

func (s *Source) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		s.Address, err = address(r)
	case 1:
		s.Durable, err = r.Uint()
	case 2:
		s.ExpiryPolicy, err = r.Symbol()
	case 3:
		s.Timeout, err = r.Uint()
	case 4:
		s.Dynamic, err = r.Bool()
	case 5:
		s.DynamicNodeProperties, err = r.SymbolMap()
	case 6:
		s.DistributionMode, err = r.Symbol()
	case 7:
		s.Filter, err = r.SymbolMap()
	case 8:
		s.DefaultOutcome, err = parseState(r)
	case 9:
		s.Outcomes, err = r.Symbols()
	case 10:
		s.Capabilities, err = r.Symbols()
	default:
		err = r.Skip()
	}
	return err
}

// Target is the target terminus (part 3.5.4).
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          encoding.Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties map[encoding.Symbol]any
	Capabilities          []encoding.Symbol
}

func (t *Target) append(b []byte) ([]byte, error) {
	f := openFields(b, codeTarget)
	f.optStr(t.Address)
	f.nonzeroUint(t.Durable)
	f.optSym(t.ExpiryPolicy)
	f.nonzeroUint(t.Timeout)
	f.optBool(t.Dynamic)
	f.optSymMap(t.DynamicNodeProperties)
	f.optSyms(t.Capabilities)
	return f.close()
}

func (t *Target) parse(i int, r *encoding.Reader) (err error) {
	switch i {
	case 0:
		t.Address, err = address(r)
	case 1:
		t.Durable, err = r.Uint()
	case 2:
		t.ExpiryPolicy, err = r.Symbol()
	case 3:
		t.Timeout, err = r.Uint()
	case 4:
		t.Dynamic, err = r.Bool()
	case 5:
		t.DynamicNodeProperties, err = r.SymbolMap()
	case 6:
		t.Capabilities, err = r.Symbols()
	default:
		err = r.Skip()
	}
	return err
}

// address reads a terminus address, which the spec types as "*": clients
// send a string, some a symbol.
func address(r *encoding.Reader) (string, error) {
	v, err := r.Any()
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case encoding.Symbol:
		return string(v), nil
	}
	return "", fmt.Errorf("%w: address of type %T", ErrInvalidField, v)
}

// described reads a described composite with the given code into p.
func described(r *encoding.Reader, want uint64, p interface {
	parse(int, *encoding.Reader) error
}) error {
	code, sym, err := r.Descriptor()
	if err != nil {
		return err
	}
	if sym != "" {
		code = symbolic[sym]
	}
	if code != want {
		return fmt.Errorf("%w: descriptor %#x, want %#x", encoding.ErrDecode, code, want)
	}
	_, err = parseFields(r, p.parse)
	return err
}

func parseError(r *encoding.Reader) (*Error, error) {
	e := new(Error)
	if err := described(r, codeError, e); err != nil {
		return nil, err
	}
	return e, nil
}

func parseSource(r *encoding.Reader) (*Source, error) {
	s := new(Source)
	if err := described(r, codeSource, s); err != nil {
		return nil, err
	}
	return s, nil
}

func parseTarget(r *encoding.Reader) (*Target, error) {
	t := new(Target)
	if err := described(r, codeTarget, t); err != nil {
		return nil, err
	}
	return t, nil
}

// optError appends e or null.
func (f *fields) optError(e *Error) {
	if e == nil {
		f.null()
	} else {
		f.body(e.append)
	}
}
