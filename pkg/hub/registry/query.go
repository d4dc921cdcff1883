package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// Query runs a small subset of the IoT Hub query language over the
// twins: "SELECT * FROM devices" or "SELECT * FROM devices.modules",
// optionally with "WHERE cond [AND cond]...", where cond is
// "path op literal": path a dotted twin path (deviceId, status,
// tags.region, properties.reported.fw, ...), op one of = != <> < <=
// > >=, literal a 'string', "string", number, true, false or null.
// Keywords are case-insensitive. Anything else is an error matching
// ErrArgumentInvalid.
//
// Results come in pages in key order, as IoT Hub's query API pages
// them: at most limit twins (limit <= 0: all), after the twin that the
// continuation token after names ("" starts at the first). next is the
// token of the following page, "" when this page is the last.
func (s *Store) Query(q, after string, limit int) (twins []*iothub.Twin, next string, err error) {
	modules, conds, err := parseQuery(q)
	if err != nil {
		return nil, "", err
	}
	start, err := decodeContinuation(after)
	if err != nil {
		return nil, "", err
	}
	out := []*iothub.Twin{}
	err = s.db.View(func(tx *bolt.Tx) error {
		src := tx.Bucket(bucketDevices)
		if modules {
			src = tx.Bucket(bucketModules)
		}
		c := src.Cursor()
		k, _ := c.First()
		if start != nil {
			k, _ = c.Seek(start)
			if bytes.Equal(k, start) {
				k, _ = c.Next()
			}
		}
		var last []byte
		for ; k != nil; k, _ = c.Next() {
			deviceID, moduleID := string(k), ""
			if modules {
				i := bytes.IndexByte(k, 0)
				deviceID, moduleID = string(k[:i]), string(k[i+1:])
			}
			t, err := readTwin(tx, deviceID, moduleID)
			if err != nil {
				return err
			}
			ok, err := matches(t, conds)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if limit > 0 && len(out) == limit {
				// Another twin matches: the page is full and not the last.
				next = encodeContinuation(last)
				break
			}
			out = append(out, t)
			last = k
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// The continuation token is the registry key of the last twin of the
// page, in URL-safe base64: opaque to clients, as IoT Hub's is.
func encodeContinuation(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(key)
}

func decodeContinuation(tok string) ([]byte, error) {
	if tok == "" {
		return nil, nil
	}
	k, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(k) == 0 {
		return nil, newErr(ErrArgumentInvalid, "x-ms-continuation %q is not a continuation token this hub gave", clip(tok))
	}
	return k, nil
}

type condition struct {
	path []string
	op   string
	val  any
}

func parseQuery(q string) (modules bool, conds []condition, err error) {
	toks, err := lexQuery(q)
	if err != nil {
		return false, nil, err
	}
	bad := func(msg string) (bool, []condition, error) {
		return false, nil, newErr(ErrArgumentInvalid, "query %q: %s (this hub supports SELECT * FROM devices[.modules] [WHERE path op literal [AND ...]])", clip(q), msg)
	}
	kw := func(i int, w string) bool { return i < len(toks) && !toks[i].lit && strings.EqualFold(toks[i].s, w) }
	if !kw(0, "select") || !kw(1, "*") || !kw(2, "from") || len(toks) < 4 {
		return bad("expected SELECT * FROM")
	}
	switch {
	case strings.EqualFold(toks[3].s, "devices"):
	case strings.EqualFold(toks[3].s, "devices.modules"):
		modules = true
	default:
		return bad("unknown collection " + toks[3].s)
	}
	i := 4
	if i == len(toks) {
		return modules, nil, nil
	}
	if !kw(i, "where") {
		return bad("expected WHERE")
	}
	i++
	for {
		if i+3 > len(toks) {
			return bad("incomplete condition")
		}
		p, op, v := toks[i], toks[i+1], toks[i+2]
		if p.lit || op.lit {
			return bad("expected path and operator")
		}
		switch op.s {
		case "=", "!=", "<>", "<", "<=", ">", ">=":
		default:
			return bad("unknown operator " + op.s)
		}
		var val any
		switch {
		case v.lit:
			val = v.s
		case strings.EqualFold(v.s, "true"):
			val = true
		case strings.EqualFold(v.s, "false"):
			val = false
		case strings.EqualFold(v.s, "null"):
			val = nil
		default:
			f, err := strconv.ParseFloat(v.s, 64)
			if err != nil {
				return bad("bad literal " + v.s)
			}
			val = f
		}
		conds = append(conds, condition{path: strings.Split(p.s, "."), op: op.s, val: val})
		i += 3
		if i == len(toks) {
			return modules, conds, nil
		}
		if !kw(i, "and") {
			return bad("expected AND")
		}
		i++
	}
}

type token struct {
	s   string
	lit bool // a quoted string
}

func lexQuery(q string) ([]token, error) {
	var toks []token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				return nil, newErr(ErrArgumentInvalid, "query: unterminated string")
			}
			toks = append(toks, token{s: q[i+1 : i+1+j], lit: true})
			i += j + 2
		case strings.IndexByte("=<>!", c) >= 0:
			j := i + 1
			for j < len(q) && strings.IndexByte("=<>", q[j]) >= 0 {
				j++
			}
			toks = append(toks, token{s: q[i:j]})
			i = j
		default:
			j := i
			for j < len(q) && strings.IndexByte(" \t\r\n'\"=<>!", q[j]) < 0 {
				j++
			}
			toks = append(toks, token{s: q[i:j]})
			i = j
		}
	}
	return toks, nil
}

func matches(t *iothub.Twin, conds []condition) (bool, error) {
	if len(conds) == 0 {
		return true, nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return false, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return false, err
	}
	for _, c := range conds {
		var cur any = doc
		for _, p := range c.path {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[p]
		}
		if !compare(cur, c.op, c.val) {
			return false, nil
		}
	}
	return true, nil
}

func compare(a any, op string, b any) bool {
	var cmp int
	switch bv := b.(type) {
	case nil:
		eq := a == nil
		return (op == "=" && eq) || ((op == "!=" || op == "<>") && !eq)
	case string:
		av, ok := a.(string)
		if !ok {
			return op == "!=" || op == "<>"
		}
		cmp = strings.Compare(av, bv)
	case float64:
		av, ok := a.(float64)
		if !ok {
			return op == "!=" || op == "<>"
		}
		switch {
		case av < bv:
			cmp = -1
		case av > bv:
			cmp = 1
		}
	case bool:
		av, ok := a.(bool)
		eq := ok && av == bv
		return (op == "=" && eq) || ((op == "!=" || op == "<>") && !eq)
	}
	switch op {
	case "=":
		return cmp == 0
	case "!=", "<>":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}
