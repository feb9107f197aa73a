package cin7core

import (
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// sinceLayout is how Cin7 Core wants ModifiedSince and UpdatedSince: ISO
// 8601 in UTC with milliseconds and no zone suffix (the blueprint's "Date
// Format": yyyy-MM-ddTHH:mm:ss.fff).
const sinceLayout = "2006-01-02T15:04:05.000"

// dateLayouts are the shapes Cin7 Core dates take on the wire: timestamps
// with Z and 0-7 fractional digits ("2017-09-29T03:03:13.913Z",
// "2021-11-11T13:27:28.16Z"), business dates without a zone
// ("2017-09-29T00:00:00"), and the odd date-only or offset value.
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

var errNotADate = errors.New("not an ISO 8601 date")

// parseTime parses a Cin7 Core date; a value without a zone is UTC.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errNotADate
}

// isZero reports whether a canonical decimal is zero.
func isZero(d model.Decimal) bool { return d == "" || d == "0" }

// subDecimal returns a-b exactly.
func subDecimal(a, b model.Decimal) model.Decimal {
	ra, ok1 := new(big.Rat).SetString(string(a))
	rb, ok2 := new(big.Rat).SetString(string(b))
	if !ok1 || !ok2 {
		return ""
	}
	return model.Decimal(vendorjson.TrimDecimal(new(big.Rat).Sub(ra, rb).FloatString(20)))
}

// obj reads a Cin7 Core JSON object field by field.
type obj = vendorjson.Obj

var objOptions = vendorjson.Options{ParseTime: parseTime, BadDate: "not a Cin7 Core date"}

// newObj splits a Cin7 Core JSON object into its fields.
func newObj(raw json.RawMessage) (*obj, error) { return vendorjson.New(raw, objOptions) }
