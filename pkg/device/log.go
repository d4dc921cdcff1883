package device

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// SetPahoLogger routes the paho MQTT library's log output to l, each
// record with the attribute "lib"="paho". paho logs internal details,
// and every failure that matters also reaches the caller as an error or
// an Event, so its levels are lowered by one step: paho's ERROR and
// CRITICAL become slog.LevelInfo, its WARN and DEBUG slog.LevelDebug
// (DEBUG only when l is enabled for debug; it is very chatty). A nil l
// silences paho again. paho's loggers are package globals shared by
// every client in the process, so call this once, from the command
// layer, before connecting. SAS signatures in paho's messages are
// redacted.
func SetPahoLogger(l *slog.Logger) {
	if l == nil {
		paho.ERROR, paho.CRITICAL, paho.WARN, paho.DEBUG = paho.NOOPLogger{}, paho.NOOPLogger{}, paho.NOOPLogger{}, paho.NOOPLogger{}
		return
	}
	l = l.With("lib", "paho")
	paho.ERROR = pahoLogger{l, slog.LevelInfo}
	paho.CRITICAL = pahoLogger{l, slog.LevelInfo}
	paho.WARN = pahoLogger{l, slog.LevelDebug}
	paho.DEBUG = paho.NOOPLogger{}
	if l.Enabled(context.Background(), slog.LevelDebug) {
		paho.DEBUG = pahoLogger{l, slog.LevelDebug}
	}
}

type pahoLogger struct {
	l     *slog.Logger
	level slog.Level
}

func (p pahoLogger) Println(v ...any) {
	p.log(strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

func (p pahoLogger) Printf(format string, v ...any) {
	p.log(fmt.Sprintf(format, v...))
}

func (p pahoLogger) log(msg string) {
	if !p.l.Enabled(context.Background(), p.level) {
		return
	}
	p.l.Log(context.Background(), p.level, redact(strings.TrimSpace(msg)))
}

var sigRE = regexp.MustCompile(`(?i)(sig=)[^&\s]*`)

// redact removes SAS signatures from s.
func redact(s string) string {
	if !strings.Contains(strings.ToLower(s), "sig=") {
		return s
	}
	return sigRE.ReplaceAllString(s, "${1}REDACTED")
}
