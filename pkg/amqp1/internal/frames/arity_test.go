package frames

import (
	"testing"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

// listCount decodes the described list at the start of r and returns
// its field count and a reader over its fields.
func listCount(t *testing.T, r *encoding.Reader) (int, *encoding.Reader) {
	t.Helper()
	if _, _, err := r.Descriptor(); err != nil {
		t.Fatalf("descriptor: %v", err)
	}
	n, lr, err := r.List()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return n, lr
}

// Every composite is sent with all its fields, absent ones as nulls, as
// Azure's AMQP stack sends them: azure-eventhub's pure-Python decoder
// indexes the fields it expects (the open's idle-time-out is its
// fifth) and fails with IndexError on a shorter list. Each body here
// sets only its mandatory fields, so dropping trailing nulls would
// shorten every one of them.
func TestEveryFieldIsSent(t *testing.T) {
	tests := []struct {
		name   string
		typ    uint8
		body   Body
		fields int
		nested map[int]int // field index -> field count of the composite in it
	}{
		{"open", TypeAMQP, &Open{ContainerID: "c"}, 10, nil},
		{"begin", TypeAMQP, &Begin{}, 8, nil},
		{"attach", TypeAMQP, &Attach{Name: "l", Source: &Source{}, Target: &Target{}}, 14, map[int]int{5: 11, 6: 7}},
		{"flow", TypeAMQP, &Flow{}, 11, nil},
		{"transfer", TypeAMQP, &Transfer{Handle: 1}, 11, nil},
		{"disposition", TypeAMQP, &Disposition{}, 6, nil},
		{"disposition received", TypeAMQP, &Disposition{State: &Received{}}, 6, map[int]int{4: 2}},
		{"disposition accepted", TypeAMQP, &Disposition{State: &Accepted{}}, 6, map[int]int{4: 0}},
		{"disposition rejected", TypeAMQP, &Disposition{State: &Rejected{}}, 6, map[int]int{4: 1}},
		{"disposition released", TypeAMQP, &Disposition{State: &Released{}}, 6, map[int]int{4: 0}},
		{"disposition modified", TypeAMQP, &Disposition{State: &Modified{}}, 6, map[int]int{4: 3}},
		{"detach", TypeAMQP, &Detach{}, 3, nil},
		{"detach with error", TypeAMQP, &Detach{Error: &Error{Condition: "amqp:link:redirect"}}, 3, map[int]int{2: 3}},
		{"end", TypeAMQP, &End{}, 1, nil},
		{"close", TypeAMQP, &Close{}, 1, nil},
		{"close with error", TypeAMQP, &Close{Error: &Error{Condition: "amqp:connection:forced"}}, 1, map[int]int{0: 3}},
		{"sasl-mechanisms", TypeSASL, &SASLMechanisms{Mechanisms: []encoding.Symbol{"PLAIN"}}, 1, nil},
		{"sasl-init", TypeSASL, &SASLInit{Mechanism: "PLAIN"}, 3, nil},
		{"sasl-challenge", TypeSASL, &SASLChallenge{Challenge: []byte{}}, 1, nil},
		{"sasl-response", TypeSASL, &SASLResponse{Response: []byte{}}, 1, nil},
		{"sasl-outcome", TypeSASL, &SASLOutcome{Code: SASLOK}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Append(nil, tt.typ, 0, tt.body, nil)
			if err != nil {
				t.Fatalf("Append(%#v): %v", tt.body, err)
			}
			n, lr := listCount(t, encoding.NewReader(b[HeaderSize:]))
			if n != tt.fields {
				t.Fatalf("%s is sent with %d fields (% x); want all %d", tt.name, n, b[HeaderSize:], tt.fields)
			}
			for i := range n {
				if want, ok := tt.nested[i]; ok {
					if got, _ := listCount(t, lr); got != want {
						t.Errorf("%s field %d is sent with %d fields; want all %d", tt.name, i, got, want)
					}
					continue
				}
				if err := lr.Skip(); err != nil {
					t.Fatalf("%s field %d: %v", tt.name, i, err)
				}
			}
			if _, err := Parse(tt.typ, b[HeaderSize:]); err != nil {
				t.Errorf("Parse(Append(%#v)): %v", tt.body, err)
			}
		})
	}
}
