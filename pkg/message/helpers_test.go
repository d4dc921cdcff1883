package message

import (
	"reflect"
	"time"
)

// normalized returns a copy of m that reflect.DeepEqual can compare:
// nil and empty maps alike, times by instant.
func normalized(m *Message) *Message {
	if m == nil {
		return nil
	}
	c := *m
	if len(c.Body) == 0 {
		c.Body = nil
	}
	if len(c.Properties) == 0 {
		c.Properties = nil
	}
	if len(c.NullProperties) == 0 {
		c.NullProperties = nil
	}
	c.ExpiryTime = normalTime(c.ExpiryTime)
	c.CreationTime = normalTime(c.CreationTime)
	return &c
}

func normalTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

// sameMessage reports whether a and b hold the same message.
func sameMessage(a, b *Message) bool {
	return reflect.DeepEqual(normalized(a), normalized(b))
}

// sameTopic reports whether a and b are the same parsed topic.
func sameTopic(a, b *Topic) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Message, y.Message = nil, nil
	return x == y && sameMessage(a.Message, b.Message)
}
