package cin7omni

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

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

// decimal turns a JSON number (or numeric string) into a canonical Decimal
// without going through a float.
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

func isZero(d model.Decimal) bool { return d == "" || d == "0" }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
