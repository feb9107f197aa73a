// Package vendorjson reads vendor JSON documents field by field, so that a
// malformed document fails naming the field at fault, never its value.
package vendorjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Options carries what differs between vendors.
type Options struct {
	// ParseTime parses the vendor's date forms.
	ParseTime func(string) (time.Time, error)
	// BadDate is the reason given for a date ParseTime rejects, such as
	// "not a Cin7 Core date".
	BadDate string
}

// Obj reads one vendor JSON object field by field, so that a malformed
// document fails with the name of the field at fault (and never its value).
// The first error sticks; later reads return zero values. The zero Obj is
// an empty object.
type Obj struct {
	keys [][]byte
	vals []json.RawMessage
	err  *FieldError
	opts Options
}

// FieldError names the field of a record that broke the vendor's contract.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Reason) }

// New splits a JSON object into its fields. raw must be valid JSON (it
// comes from a document json.Unmarshal has already checked).
func New(raw json.RawMessage, opts Options) (*Obj, error) {
	keys, vals, ok := scanObject(raw)
	if !ok {
		return nil, &FieldError{Field: "(record)", Reason: "not a JSON object"}
	}
	return &Obj{keys: keys, vals: vals, opts: opts}, nil
}

// Err returns the first error met, nil when there is none.
func (o *Obj) Err() error {
	if o.err == nil {
		return nil
	}
	return o.err
}

// Fail records that field broke the contract, unless an error is already
// recorded.
func (o *Obj) Fail(field, reason string) {
	if o.err == nil {
		o.err = &FieldError{Field: field, Reason: reason}
	}
}

// Get returns the raw value of a field, nil when absent or null. Keys match
// exactly first, then case-insensitively.
func (o *Obj) Get(field string) json.RawMessage {
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

// isNull reports whether a raw value is absent or null.
func isNull(v json.RawMessage) bool {
	return len(v) == 0 || bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}

// Str reads a string field; absent or null is "".
func (o *Obj) Str(field string) string {
	v := o.Get(field)
	if v == nil {
		return ""
	}
	if s, ok := plainString(v); ok {
		return s
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		o.Fail(field, "not a string")
		return ""
	}
	return s
}

// ReqStr reads a string field that must be present and not empty.
func (o *Obj) ReqStr(field string) string {
	s := o.Str(field)
	if s == "" && o.err == nil {
		o.Fail(field, "missing or empty")
	}
	return s
}

// Dec reads a number (or a numeric string) as an exact decimal.
func (o *Obj) Dec(field string) model.Decimal {
	v := o.Get(field)
	if v == nil {
		return ""
	}
	var n json.Number
	if v[0] == '"' {
		s, ok := plainString(v)
		if !ok {
			o.Fail(field, "not a number")
			return ""
		}
		n = json.Number(strings.TrimSpace(s))
	} else {
		n = json.Number(bytes.TrimSpace(v))
	}
	d, err := Decimal(n)
	if err != nil {
		o.Fail(field, "not a number")
		return ""
	}
	return d
}

// Float reads a quantity.
func (o *Obj) Float(field string) float64 {
	d := o.Dec(field)
	if d == "" {
		return 0
	}
	f, err := strconv.ParseFloat(string(d), 64)
	if err != nil {
		o.Fail(field, "not a number")
		return 0
	}
	return f
}

// Bool reads a boolean field; absent or null is false.
func (o *Obj) Bool(field string) bool {
	v := o.Get(field)
	if v == nil {
		return false
	}
	switch string(bytes.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	o.Fail(field, "not a boolean")
	return false
}

// Time reads a date field; required fields must be present.
func (o *Obj) Time(field string, required bool) time.Time {
	s := o.Str(field)
	if s == "" {
		if required {
			o.Fail(field, "missing date")
		}
		return time.Time{}
	}
	t, err := o.opts.ParseTime(s)
	if err != nil {
		o.Fail(field, o.opts.BadDate)
		return time.Time{}
	}
	return t
}

// OptTime reads a nullable date.
func (o *Obj) OptTime(field string) *time.Time {
	t := o.Time(field, false)
	if t.IsZero() {
		return nil
	}
	return &t
}

// Arr reads an array of raw elements; absent or null is empty.
func (o *Obj) Arr(field string) []json.RawMessage {
	v := o.Get(field)
	if v == nil {
		return nil
	}
	out, ok := SplitArray(v)
	if !ok {
		o.Fail(field, "not an array")
		return nil
	}
	return out
}

// Child reads element i of an array field as an object.
func (o *Obj) Child(field string, i int, raw json.RawMessage) *Obj {
	c, err := New(raw, o.opts)
	if err != nil {
		o.Fail(fmt.Sprintf("%s[%d]", field, i), "not a JSON object")
		return &Obj{}
	}
	return c
}

// Adopt copies a child's error, prefixed with its path.
func (o *Obj) Adopt(prefix string, c *Obj) {
	if c.err != nil {
		o.Fail(prefix+"."+c.err.Field, c.err.Reason)
	}
}

// OrderedObject reads a JSON object's keys and raw values in document order
// (for maps whose order matters, such as Cin7 Core's PriceTiers).
func OrderedObject(b json.RawMessage) (keys []string, vals []json.RawMessage, ok bool) {
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

// SplitArray splits a JSON array into its raw elements; ok is false when b
// is not an array.
func SplitArray(b []byte) ([]json.RawMessage, bool) {
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
