package cin7omni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// obj reads one vendor JSON object field by field, so that a malformed
// document fails with the name of the field at fault (and never its value).
// The first error sticks; later reads return zero values.
type obj struct {
	keys [][]byte
	vals []json.RawMessage
	err  *fieldError
}

// fieldError names the field of a record that broke the vendor's contract.
type fieldError struct {
	Field  string
	Reason string
}

func (e *fieldError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Reason) }

// newObj splits a JSON object into its fields. raw must be valid JSON (it
// comes from a document json.Unmarshal has already checked).
func newObj(raw json.RawMessage) (*obj, error) {
	keys, vals, ok := scanObject(raw)
	if !ok {
		return nil, &fieldError{Field: "(record)", Reason: "not a JSON object"}
	}
	return &obj{keys: keys, vals: vals}, nil
}

func (o *obj) fail(field, reason string) {
	if o.err == nil {
		o.err = &fieldError{Field: field, Reason: reason}
	}
}

// get returns the raw value of a field, nil when absent or null. Keys match
// exactly first, then case-insensitively.
func (o *obj) get(field string) json.RawMessage {
	var v json.RawMessage
	found := false
	for i, k := range o.keys {
		if string(k) == field {
			v, found = o.vals[i], true
			break
		}
	}
	if !found {
		for i, k := range o.keys {
			if strings.EqualFold(string(k), field) {
				v, found = o.vals[i], true
				break
			}
		}
	}
	if !found || isNull(v) {
		return nil
	}
	return v
}

func isNull(v json.RawMessage) bool {
	return len(v) == 0 || bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// str reads a string field; absent or null is "".
func (o *obj) str(field string) string {
	v := o.get(field)
	if v == nil {
		return ""
	}
	if s, ok := plainString(v); ok {
		return s
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.fail(field, "not a string")
		return ""
	}
	return s
}

// dec reads a number (or a numeric string) as an exact decimal.
func (o *obj) dec(field string) model.Decimal {
	v := o.get(field)
	if v == nil {
		return ""
	}
	var n json.Number
	if v[0] == '"' {
		s, ok := plainString(v)
		if !ok {
			o.fail(field, "not a number")
			return ""
		}
		n = json.Number(strings.TrimSpace(s))
	} else {
		n = json.Number(bytes.TrimSpace(v))
	}
	d, err := decimal(n)
	if err != nil {
		o.fail(field, "not a number")
		return ""
	}
	return d
}

// float reads a quantity.
func (o *obj) float(field string) float64 {
	d := o.dec(field)
	if d == "" {
		return 0
	}
	f, err := strconv.ParseFloat(string(d), 64)
	if err != nil {
		o.fail(field, "not a number")
		return 0
	}
	return f
}

// boolean reads a boolean field; absent or null is false.
func (o *obj) boolean(field string) bool {
	v := o.get(field)
	if v == nil {
		return false
	}
	switch string(bytes.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	o.fail(field, "not a boolean")
	return false
}

// time reads a date field; required fields must be present.
func (o *obj) time(field string, required bool) time.Time {
	s := o.str(field)
	if s == "" {
		if required {
			o.fail(field, "missing date")
		}
		return time.Time{}
	}
	t, err := parseTime(s)
	if err != nil {
		o.fail(field, "not a Cin7 Omni date")
		return time.Time{}
	}
	return t
}

// optTime reads a nullable date.
func (o *obj) optTime(field string) *time.Time {
	t := o.time(field, false)
	if t.IsZero() {
		return nil
	}
	return &t
}

// arr reads an array of raw elements; absent or null is empty.
func (o *obj) arr(field string) []json.RawMessage {
	v := o.get(field)
	if v == nil {
		return nil
	}
	out, ok := splitArray(v)
	if !ok {
		o.fail(field, "not an array")
		return nil
	}
	return out
}

// child reads element i of an array field as an object.
func (o *obj) child(field string, i int, raw json.RawMessage) *obj {
	c, err := newObj(raw)
	if err != nil {
		o.fail(fmt.Sprintf("%s[%d]", field, i), "not a JSON object")
		return &obj{}
	}
	return c
}

// adopt copies a child's error, prefixed with its path.
func (o *obj) adopt(prefix string, c *obj) {
	if c.err != nil {
		o.fail(prefix+"."+c.err.Field, c.err.Reason)
	}
}

// orderedObject reads a JSON object's keys and raw values in document order
// (Cin7 Core's PriceTiers map is ordered by tier).
func orderedObject(b json.RawMessage) (keys []string, vals []json.RawMessage, ok bool) {
	bk, vals, ok := scanObject(b)
	if !ok {
		return nil, nil, false
	}
	keys = make([]string, len(bk))
	for i, k := range bk {
		keys[i] = string(k)
	}
	return keys, vals, true
}

// scanObject splits a JSON object into its keys (unquoted, sharing b unless
// escaped) and raw values, in document order.
func scanObject(b []byte) (keys [][]byte, vals []json.RawMessage, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, nil, false
	}
	keys = make([][]byte, 0, 16)
	vals = make([]json.RawMessage, 0, 16)
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		if b[i] != '"' {
			return nil, nil, false
		}
		end := skipValue(b, i)
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(b[i:end], &k); err != nil {
				return nil, nil, false
			}
			key = []byte(k)
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, nil, false
		}
		i = skipSpace(b, i+1)
		end = skipValue(b, i)
		if end <= i {
			return nil, nil, false
		}
		keys = append(keys, key)
		vals = append(vals, json.RawMessage(b[i:end]))
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return keys, vals, i < len(b)
}

// plainString returns the content of a JSON string without escapes; ok is
// false for anything else (the caller falls back to encoding/json).
func plainString(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') >= 0 || bytes.IndexByte(in, '"') >= 0 {
		return "", false
	}
	return string(in), true
}

// The splitters below walk JSON that encoding/json has already validated,
// so they only track nesting and strings. They return false when the value
// is not of the expected kind.

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i++
			for ; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func splitArray(b []byte) ([]json.RawMessage, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	var out []json.RawMessage
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		end := skipValue(b, i)
		if end <= i {
			return nil, false
		}
		out = append(out, json.RawMessage(b[i:end]))
		i = skipSpace(b, end)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out, i < len(b)
}
