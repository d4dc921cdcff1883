package device

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SetPahoLogger routes the paho MQTT library's log output to l, each
// record with the attribute "lib"="paho". paho logs internal details,
// and every failure that matters also reaches the caller as an error or
// an Event, so its levels are lowered by one step: paho's ERROR and
// CRITICAL become slog.LevelInfo, its WARN and DEBUG slog.LevelDebug
// (DEBUG only when l is enabled for debug; it is very chatty). A nil l
// silences paho again. paho's loggers are package globals shared by
// every client in the process: call this from the command layer,
// before connecting. It is safe to call again (and concurrently with
// running clients): paho's globals are set once (by the first New or
// SetPahoLogger), to loggers that forward to the latest l and drop
// everything before the first call. SAS signatures in paho's messages
// are redacted.
func SetPahoLogger(l *slog.Logger) {
	var s *pahoSink
	if l != nil {
		s = &pahoSink{l: l.With("lib", "paho"), debug: l.Enabled(context.Background(), slog.LevelDebug)}
	}
	pahoTarget.Store(s)
	installPahoLoggers()
}

// installPahoLoggers points paho's global loggers at pahoTarget, once.
// New calls it too, before any paho client of this package runs, so
// that the globals are never written while paho reads them.
func installPahoLoggers() {
	pahoOnce.Do(func() {
		paho.ERROR = pahoLogger{level: slog.LevelInfo}
		paho.CRITICAL = pahoLogger{level: slog.LevelInfo}
		paho.WARN = pahoLogger{level: slog.LevelDebug}
		paho.DEBUG = pahoLogger{level: slog.LevelDebug, debug: true}
	})
}

var (
	pahoOnce   sync.Once
	pahoTarget atomic.Pointer[pahoSink]
)

// pahoSink is where paho's records go.
type pahoSink struct {
	l     *slog.Logger
	debug bool // paho's DEBUG output is wanted
}

// pahoLogger is one of paho's loggers; it forwards to pahoTarget.
type pahoLogger struct {
	level slog.Level
	debug bool // this is paho's DEBUG logger
}

// sink returns where to log, or nil to drop the record.
func (p pahoLogger) sink() *pahoSink {
	s := pahoTarget.Load()
	if s == nil || (p.debug && !s.debug) || !s.l.Enabled(context.Background(), p.level) {
		return nil
	}
	return s
}

func (p pahoLogger) Println(v ...any) {
	if s := p.sink(); s != nil {
		s.log(p.level, strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
	}
}

func (p pahoLogger) Printf(format string, v ...any) {
	if s := p.sink(); s != nil {
		s.log(p.level, fmt.Sprintf(format, v...))
	}
}

func (s *pahoSink) log(level slog.Level, msg string) {
	s.l.Log(context.Background(), level, redact(strings.TrimSpace(msg)))
}

var sigRE = regexp.MustCompile(`(?i)(sig=)[^&\s]*`)

// redact removes SAS signatures from s.
func redact(s string) string {
	if !strings.Contains(strings.ToLower(s), "sig=") {
		return s
	}
	return sigRE.ReplaceAllString(s, "${1}REDACTED")
}
