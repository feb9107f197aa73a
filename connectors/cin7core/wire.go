package cin7core

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

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

// decimal turns a JSON number into a canonical Decimal without going through
// a float: "12.50" gives "12.5", "1e-2" gives "0.01". A missing number is "".
func decimal(n json.Number) (model.Decimal, error) {
	s := strings.TrimSpace(string(n))
	if s == "" {
		return "", nil
	}
	if plainDecimal(s) {
		return model.Decimal(trimDecimal(s)), nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", fmt.Errorf("not a number")
	}
	return model.Decimal(trimDecimal(r.FloatString(20))), nil
}

// plainDecimal reports whether s is [-+]digits[.digits].
func plainDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") {
		return false
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

func trimDecimal(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ := strings.Cut(s, ".")
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	frac = strings.TrimRight(frac, "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out
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
	return model.Decimal(trimDecimal(new(big.Rat).Sub(ra, rb).FloatString(20)))
}
