package katana

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// timestamp parses Katana's ISO 8601 timestamps ("2020-10-23T10:37:05.085Z",
// any number of fraction digits, any offset; a time without a zone is UTC).
func timestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 time", s)
}

// optTime parses a nullable timestamp.
func optTime(s *string) (*time.Time, error) {
	var f vendorjson.Fields
	t := f.OptTime("", s, timestamp)
	if f.Err != nil {
		return nil, errors.Unwrap(f.Err)
	}
	return t, nil
}

// fieldErr names the field of a record that failed to decode.
type fieldErr = vendorjson.FieldErr

// fields collects the first decoding error of a record, naming its field.
type fields struct{ vendorjson.Fields }

func (f *fields) dec(name string, n num) model.Decimal { return f.Decimal(name, json.Number(n)) }

func (f *fields) qty(name string, n num) float64 { return f.Quantity(name, json.Number(n)) }

func (f *fields) time(name string, s string) time.Time { return f.Time(name, s, timestamp) }

func (f *fields) optTime(name string, s *string) *time.Time { return f.OptTime(name, s, timestamp) }

func (f *fields) id(name string, v int64) string {
	if v <= 0 && f.Err == nil {
		f.Err = &fieldErr{Field: name, Err: fmt.Errorf("missing or not a positive id")}
	}
	return strconv.FormatInt(v, 10)
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
