package simulate

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/google/uuid"
)

// TemplateError is a message template that does not parse or does not
// run. The command layer maps it to exit code 3.
type TemplateError struct {
	Err error
}

func (e *TemplateError) Error() string { return "simulate: template: " + e.Err.Error() }
func (e *TemplateError) Unwrap() error { return e.Err }

// Template makes message bodies from a text/template with these
// additions (see TemplateHelp):
//
//	{{counter}}          message number of this device: 1, 2, 3, ...
//	{{deviceId}}         the device id
//	{{now}}              the send time, RFC 3339 UTC with milliseconds
//	{{unix}}             the send time in Unix seconds
//	{{uuid}}             a random UUID (version 4)
//	{{randInt 1 10}}     a random integer from 1 to 10, both included
//	{{randFloat 20 35}}  a random float in [20, 35); shorten it with
//	                     {{randFloat 20 35 | printf "%.2f"}}
//
// A Template is safe for concurrent use.
type Template struct {
	t *template.Template
}

// TemplateHelp documents the template syntax for help texts.
const TemplateHelp = `Templates are Go text/template text with these functions:
  {{counter}}            message number of the device: 1, 2, 3, ...
  {{deviceId}}           the device id
  {{now}}                send time, RFC 3339 UTC, e.g. 2025-01-02T03:04:05.678Z
  {{unix}}               send time in Unix seconds
  {{uuid}}               a random UUID
  {{randInt 1 10}}       random integer from 1 to 10 (both included)
  {{randFloat 20 35}}    random float in [20, 35); round it with
                         {{randFloat 20 35 | printf "%.2f"}}`

// templateData is what a template runs on; the per-message functions
// are rewritten into fields of it.
type templateData struct {
	Counter  int64
	DeviceID string
	Now      string
	Unix     int64
}

// fields maps the per-message function names to templateData fields.
var fields = map[string]string{"counter": "Counter", "deviceId": "DeviceID", "now": "Now", "unix": "Unix"}

var funcs = template.FuncMap{
	// Placeholders so that parsing accepts them; rewrite replaces them.
	"counter":  func() int64 { return 0 },
	"deviceId": func() string { return "" },
	"now":      func() string { return "" },
	"unix":     func() int64 { return 0 },

	"uuid":      newUUID,
	"randInt":   randInt,
	"randFloat": randFloat,
}

// ParseTemplate parses text. It runs the template once on sample data
// so that mistakes such as {{randInt 10 1}} are found now; both parse
// and run errors are a *TemplateError.
func ParseTemplate(text string) (*Template, error) {
	t, err := template.New("data").Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, &TemplateError{Err: cleanErr(err)}
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			rewrite(tt.Tree.Root)
		}
	}
	tp := &Template{t: t}
	if _, err := tp.Execute("device", 1, time.Now()); err != nil {
		return nil, err
	}
	return tp, nil
}

// Execute renders the body of message number counter of deviceID,
// sent at now. Errors are *TemplateError.
func (t *Template) Execute(deviceID string, counter int64, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	now = now.UTC()
	d := templateData{Counter: counter, DeviceID: deviceID, Now: now.Format("2006-01-02T15:04:05.000Z07:00"), Unix: now.Unix()}
	if err := t.t.Execute(&b, d); err != nil {
		return nil, &TemplateError{Err: cleanErr(err)}
	}
	return b.Bytes(), nil
}

func cleanErr(err error) error {
	// "template: data:1:5: ..." reads better as "1:5: ...".
	return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "template: data:"))
}

// rewrite replaces the per-message function identifiers with fields.
func rewrite(n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			rewrite(c)
		}
	case *parse.ActionNode:
		rewrite(n.Pipe)
	case *parse.IfNode:
		rewriteBranch(&n.BranchNode)
	case *parse.RangeNode:
		rewriteBranch(&n.BranchNode)
	case *parse.WithNode:
		rewriteBranch(&n.BranchNode)
	case *parse.TemplateNode:
		rewrite(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			for i, a := range c.Args {
				if id, ok := a.(*parse.IdentifierNode); ok {
					if f, ok := fields[id.Ident]; ok {
						c.Args[i] = &parse.FieldNode{NodeType: parse.NodeField, Pos: id.Pos, Ident: []string{f}}
					}
					continue
				}
				rewrite(a)
			}
		}
	}
}

func rewriteBranch(b *parse.BranchNode) {
	rewrite(b.Pipe)
	rewrite(b.List)
	rewrite(b.ElseList)
}

func randInt(lo, hi int) (int, error) {
	if hi < lo {
		return 0, fmt.Errorf("randInt %d %d: the first number must not be larger than the second", lo, hi)
	}
	return lo + rand.IntN(hi-lo+1), nil
}

func randFloat(lo, hi float64) (float64, error) {
	if hi < lo {
		return 0, fmt.Errorf("randFloat %v %v: the first number must not be larger than the second", lo, hi)
	}
	return lo + rand.Float64()*(hi-lo), nil
}

func newUUID() string { return uuid.NewString() }
