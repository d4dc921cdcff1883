package amqpfront

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrSelector is wrapped by the errors of a selector filter this front
// does not understand; the link is refused with
// com.microsoft:argument-error.
var ErrSelector = errors.New("amqpfront: unsupported selector filter")

// posKind says how a receiver's start position is given.
type posKind int

const (
	posStart posKind = iota // the oldest event held
	posEnd                  // the next event enqueued ("@latest")
	posSeq                  // the event with sequence number seq
	posTime                 // the first event enqueued at or after t
)

// position is where a partition receiver starts.
type position struct {
	kind posKind
	seq  int64
	t    time.Time
}

func (p position) String() string {
	switch p.kind {
	case posEnd:
		return "end"
	case posSeq:
		return "sequence " + strconv.FormatInt(p.seq, 10)
	case posTime:
		return "time " + p.t.UTC().Format(time.RFC3339Nano)
	}
	return "start"
}

// Selector annotations, as the Event Hubs SDKs write them after
// "amqp.annotation.". annEnqueuedTimeUTC is the older name of the
// enqueued time, still sent by the Event Hubs client for C
// (Azure/azure-event-hubs-c, eventhub_client/src/eventhubreceiver_ll.c:
// "amqp.annotation.x-opt-enqueuedtimeutc > %llu", in milliseconds),
// uamqp's Event Hubs tests and Microsoft's AMQP samples for reading IoT
// Hub telemetry with amqp10 in Node.js (unquoted milliseconds).
const (
	annOffset          = "x-opt-offset"
	annSequence        = "x-opt-sequence-number"
	annEnqueuedTime    = "x-opt-enqueued-time"
	annEnqueuedTimeUTC = "x-opt-enqueuedtimeutc"
)

// parseSelector reads the selector filter of an Event Hubs receiver:
// "amqp.annotation.{x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time|x-opt-enqueuedtimeutc}
// {>|>=|=} '{value}'", the way every Event Hubs SDK writes it (the
// "amqp.annotation." prefix and the quotes are optional here; names are
// case-insensitive). Offsets are this hub's sequence numbers in decimal;
// "-1" means the start and "@latest" the end. Enqueued times, under
// either name, are milliseconds since the Unix epoch. "=" is read as
// ">=". An empty selector means the start.
func parseSelector(s string) (position, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return position{kind: posStart}, nil
	}
	bad := func(why string) (position, error) {
		return position{}, fmt.Errorf("%w: %q: %s", ErrSelector, s, why)
	}
	i := strings.IndexAny(s, "<>= \t")
	if i <= 0 {
		return bad("no comparison")
	}
	name := strings.ToLower(s[:i])
	name = strings.TrimPrefix(name, "amqp.annotation.")
	rest := strings.TrimLeft(s[i:], " \t")
	var inclusive bool
	switch {
	case strings.HasPrefix(rest, ">="):
		inclusive, rest = true, rest[2:]
	case strings.HasPrefix(rest, ">"):
		rest = rest[1:]
	case strings.HasPrefix(rest, "="):
		inclusive, rest = true, rest[1:]
	default:
		return bad("the comparison must be >, >= or =")
	}
	v := strings.TrimSpace(rest)
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	} else if strings.ContainsAny(v, "' \t") {
		return bad("malformed value")
	}
	switch name {
	case annOffset:
		switch v {
		case "@latest":
			return position{kind: posEnd}, nil
		case "-1":
			return position{kind: posStart}, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("the offset is not a number")
		}
		return seqPosition(n, inclusive), nil
	case annSequence:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("the sequence number is not a number")
		}
		return seqPosition(n, inclusive), nil
	case annEnqueuedTime, annEnqueuedTimeUTC:
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return bad("the enqueued time is not a number of milliseconds")
		}
		if !inclusive {
			// AMQP timestamps have millisecond precision: an event
			// is after ms when its time in milliseconds is.
			if ms == maxInt64 {
				return position{kind: posEnd}, nil
			}
			ms++
		}
		return position{kind: posTime, t: time.UnixMilli(ms)}, nil
	}
	return bad("unknown annotation " + name + "; use " + annOffset + ", " + annSequence + ", " + annEnqueuedTime + " or " + annEnqueuedTimeUTC)
}

const maxInt64 = int64(^uint64(0) >> 1)

// seqPosition is the position after (or at, when inclusive) sequence
// number n.
func seqPosition(n int64, inclusive bool) position {
	if !inclusive {
		if n == maxInt64 {
			return position{kind: posEnd}
		}
		n++
	}
	if n <= 0 {
		return position{kind: posStart}
	}
	return position{kind: posSeq, seq: n}
}

func formatSeq(n int64) string { return strconv.FormatInt(n, 10) }
