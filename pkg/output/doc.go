// Package output prints command results as aligned tables (on a
// terminal), tab-separated text (when piped), JSON, YAML or JSON Lines
// streams. JSON and YAML come from the same json struct tags.
//
//	p := output.New(os.Stdout, output.FormatTable, output.IsTerminal(os.Stdout))
//	err := p.Print(v, func(t *output.Table) { t.Row("ID", v.ID) })
package output
