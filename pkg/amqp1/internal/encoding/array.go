package encoding

import "time"

// array decodes the body of an array8/array32 whose code was consumed.
func (r *Reader) array(code byte) (any, error) {
	listCode := CodeList8
	if code == CodeArray32 {
		listCode = CodeList32
	}
	n, ar, err := r.listBody(listCode)
	if err != nil {
		return nil, err
	}
	elem, err := ar.byte1()
	if err != nil {
		return nil, err
	}
	var desc any
	if elem == CodeDescribed {
		if desc, err = ar.Any(); err != nil {
			return nil, err
		}
		switch desc.(type) {
		case uint64, Symbol:
		default:
			return nil, decodeErr("array descriptor of type %T", desc)
		}
		if elem, err = ar.byte1(); err != nil {
			return nil, err
		}
		if elem == CodeDescribed {
			return nil, decodeErr("nested descriptor in array constructor")
		}
	}
	if n > ar.Len() && !zeroWidth(elem) {
		return nil, errShort
	}
	switch {
	case desc != nil:
	case elem == CodeSym8 || elem == CodeSym32:
		out := make([]Symbol, n)
		for i := range out {
			v, err := ar.variableBody(elem, CodeSym8, CodeSym32, "a symbol")
			if err != nil {
				return nil, err
			}
			out[i] = Symbol(v)
		}
		return out, nil
	case elem == CodeStr8 || elem == CodeStr32:
		out := make([]string, n)
		for i := range out {
			v, err := ar.variableBody(elem, CodeStr8, CodeStr32, "a string")
			if err != nil {
				return nil, err
			}
			out[i] = string(v)
		}
		return out, nil
	}
	vals := make([]any, n)
	for i := range vals {
		v, err := ar.anyBody(elem)
		if err != nil {
			return nil, err
		}
		if desc != nil {
			v = Described{Descriptor: desc, Value: v}
		}
		vals[i] = v
	}
	if desc != nil {
		return vals, nil
	}
	switch elem {
	case CodeBool, CodeTrue, CodeFalse:
		return typed[bool](vals), nil
	case CodeInt, CodeSmallInt:
		return typed[int32](vals), nil
	case CodeLong, CodeSmallLong:
		return typed[int64](vals), nil
	case CodeUint, CodeSmallUint, CodeUint0:
		return typed[uint32](vals), nil
	case CodeUlong, CodeSmallUlong, CodeUlong0:
		return typed[uint64](vals), nil
	case CodeDouble:
		return typed[float64](vals), nil
	case CodeUUID:
		return typed[UUID](vals), nil
	case CodeTimestamp:
		return typed[time.Time](vals), nil
	}
	return vals, nil
}

// zeroWidth reports whether elements of this constructor take no bytes;
// their count is still capped by the sub reader's element-count check.
func zeroWidth(code byte) bool {
	switch code {
	case CodeNull, CodeTrue, CodeFalse, CodeUint0, CodeUlong0, CodeList0:
		return true
	}
	return false
}

func typed[T any](vals []any) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i], _ = v.(T)
	}
	return out
}
