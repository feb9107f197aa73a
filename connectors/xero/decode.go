package xero

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// digits reports whether s is all ASCII digits.
func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// msDate parses Xero's dates: the Microsoft JSON form "/Date(ms)/" or
// "/Date(ms+hhmm)/" (milliseconds since the epoch; the offset names the zone
// the instant is shown in, as Xero does for local dates), and, as Xero's
// *String companions and some endpoints carry, ISO 8601 with or without a
// zone (zone-less is UTC).
func msDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "/Date("); ok {
		inner, ok = strings.CutSuffix(inner, ")/")
		if !ok {
			return time.Time{}, fmt.Errorf("%q is not a /Date(...)/ value", s)
		}
		ms, zone := inner, ""
		if i := strings.LastIndexAny(inner, "+-"); i > 0 {
			ms, zone = inner[:i], inner[i:]
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a /Date(...)/ value", s)
		}
		t := time.UnixMilli(n).UTC()
		if zone == "" || zone == "+0000" || zone == "-0000" {
			return t, nil
		}
		if len(zone) != 5 || !digits(zone[1:]) {
			return time.Time{}, fmt.Errorf("%q has a malformed offset", s)
		}
		h, _ := strconv.Atoi(zone[1:3])
		m, _ := strconv.Atoi(zone[3:5])
		off := h*3600 + m*60
		if zone[0] == '-' {
			off = -off
		}
		return t.In(time.FixedZone(zone, off)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a Xero date", s)
}

// fieldErr names the field of a record that failed to decode.
type fieldErr = vendorjson.FieldErr

// fields collects the first decoding error of a record, naming its field.
type fields struct{ vendorjson.Fields }

func (f *fields) dec(name string, n num) model.Decimal { return f.Decimal(name, json.Number(n)) }

func (f *fields) qty(name string, n num) float64 { return f.Quantity(name, json.Number(n)) }

func (f *fields) time(name string, s string) time.Time { return f.Time(name, s, msDate) }

func (f *fields) optTime(name string, s *string) *time.Time { return f.OptTime(name, s, msDate) }

func (f *fields) id(name string, v string) string {
	if strings.TrimSpace(v) == "" && f.Err == nil {
		f.Err = &fieldErr{Field: name, Err: fmt.Errorf("missing")}
	}
	return v
}

// num is a number Xero sends as a JSON number (money with 2 or 4 decimal
// places). It keeps the text so money never passes through a float; a
// numeric string or null is accepted too, and fields.dec and fields.qty
// name the field when it is not a number.
type num string

// UnmarshalJSON implements json.Unmarshaler.
func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*n = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = num(s)
	default:
		*n = num(b)
	}
	return nil
}
