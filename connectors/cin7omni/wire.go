package cin7omni

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// sinceLayout is the date literal of the where clause: ISO 8601 in UTC
// with Z, as public clients send it (ModifiedDate>='2026-01-01T00:00:00Z').
const sinceLayout = "2006-01-02T15:04:05Z"

var errNotADate = errors.New("not a Cin7 Omni date")

// parseTime parses the date forms Cin7 Omni sends: ISO 8601 in UTC with or
// without fraction ("2020-03-10T21:29:36Z"), with a local offset and up to
// seven fractional digits ("2024-03-20T13:30:44.518448+13:00"), or without
// zone (read as UTC).
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errNotADate
}

func isZero(d model.Decimal) bool { return d == "" || d == "0" }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// obj reads a Cin7 Omni JSON object field by field.
type obj = vendorjson.Obj

var objOptions = vendorjson.Options{ParseTime: parseTime, BadDate: "not a Cin7 Omni date"}

// newObj splits a Cin7 Omni JSON object into its fields.
func newObj(raw json.RawMessage) (*obj, error) { return vendorjson.New(raw, objOptions) }
