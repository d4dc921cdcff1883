package examples

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// An example is one command line of a help text or of the README, as a
// user would paste it.
type example struct {
	// Script is the line, continuation lines joined.
	Script string
	// Where lists the places that show it: "iotctl hub device create
	// --help", "README.md:166".
	Where []string
	// Exit is the exit code the example shows ("# exits N"); 0 when it
	// shows none.
	Exit int
	// Block is set for a README block run as one script.
	Block bool
}

func (e *example) name() string {
	if e.Block {
		return e.Where[0]
	}
	return e.Where[0] + ": " + e.Script
}

// exitComment is the marker of an example meant to fail: a trailing
// shell comment "# exits N", optionally followed by a reason.
var exitComment = regexp.MustCompile(`#\s*exits\s+(\d+)\b[^'"]*$`)

// commandLines returns the command lines of a help Example or of a
// README block: the lines starting with "$ " when there are any (the
// others are output), else every non-empty line that is not a comment.
// A line ending in a backslash continues on the next.
func commandLines(text string) []string {
	lines := strings.Split(text, "\n")
	prompted := false
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "$ ") {
			prompted = true
			break
		}
	}
	var out []string
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if prompted {
			if !strings.HasPrefix(l, "$ ") {
				continue
			}
			l = strings.TrimPrefix(l, "$ ")
		} else if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSpace(strings.TrimSuffix(l, `\`)) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, l)
	}
	return out
}

// expectedExit reads the "# exits N" comment of a command line.
func expectedExit(line string) int {
	m := exitComment.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// examples is an ordered set of examples keyed by their text: an
// example shown in several places runs once.
type examples struct {
	list   []*example
	byText map[string]*example
}

func (s *examples) add(script, where string) *example {
	if s.byText == nil {
		s.byText = map[string]*example{}
	}
	if e, ok := s.byText[script]; ok {
		e.Where = append(e.Where, where)
		return e
	}
	e := &example{Script: script, Where: []string{where}, Exit: expectedExit(script)}
	s.byText[script] = e
	s.list = append(s.list, e)
	return e
}

// helpExamples adds every example of every command of the tree, hidden
// ones included.
func helpExamples(s *examples) {
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &strings.Builder{}, ErrOut: &strings.Builder{}})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range commandLines(c.Example) {
			s.add(l, c.CommandPath()+" --help")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.NewRootCmd(f))
}

// The README's markers. Each fenced shell block carries one on the line
// before it: runnableMarker runs its lines as examples, scriptMarker
// runs the block as one script (its lines go together);
// notRunnablePrefix says why they cannot run here. The tour block
// between tourStart and tourEnd is run as one script by test/tour.
const (
	runnableMarker    = "<!-- runnable -->"
	scriptMarker      = "<!-- runnable: script -->"
	notRunnablePrefix = "<!-- not-runnable:"
	tourStart         = "<!-- tour:start -->"
	tourEnd           = "<!-- tour:end -->"
)

// A readmeBlock is a fenced shell block of the README that is not run,
// with the reason its marker gives.
type readmeBlock struct {
	Line   int
	First  string
	Reason string
}

// readmeExamples adds the lines of the README's runnable blocks to s
// and returns the blocks marked not runnable. A shell block with no
// marker is an error: every block says whether it runs.
func readmeExamples(readme string, s *examples) ([]readmeBlock, error) {
	lines := strings.Split(readme, "\n")
	var skipped []readmeBlock
	inTour := false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == tourStart:
			inTour = true
			continue
		case l == tourEnd:
			inTour = false
			continue
		case !strings.HasPrefix(l, "```"):
			continue
		}
		lang := strings.TrimPrefix(l, "```")
		start := i
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "sh" && lang != "bash" && lang != "shell" {
			continue
		}
		marker := ""
		for j := start - 1; j >= 0; j-- {
			if m := strings.TrimSpace(lines[j]); m != "" {
				marker = m
				break
			}
		}
		switch {
		case inTour:
		case marker == runnableMarker:
			for _, c := range commandLines(strings.Join(body, "\n")) {
				s.add(c, fmt.Sprintf("README.md:%d", start+1))
			}
		case marker == scriptMarker:
			s.add(strings.Join(body, "\n"), fmt.Sprintf("README.md:%d (script)", start+1)).Block = true
		case strings.HasPrefix(marker, notRunnablePrefix) && strings.HasSuffix(marker, "-->"):
			reason := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(marker, notRunnablePrefix), "-->"))
			if reason == "" {
				return nil, fmt.Errorf("README.md:%d: %s gives no reason", start, marker)
			}
			first := ""
			if len(body) > 0 {
				first = strings.TrimSpace(body[0])
			}
			skipped = append(skipped, readmeBlock{Line: start + 1, First: first, Reason: reason})
		default:
			return nil, fmt.Errorf("README.md:%d: a shell block with none of %s, %s or %s REASON --> on the line before it",
				start+1, runnableMarker, scriptMarker, notRunnablePrefix)
		}
	}
	return skipped, nil
}
