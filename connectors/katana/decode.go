package katana

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// decimal turns a JSON number or numeric string ("1250.0000000000", 40,
// "1e3") into the canonical decimal text ("1250", "40", "1000") without a
// float round trip. The empty input is the empty Decimal.
func decimal(n json.Number) (model.Decimal, error) {
	s := strings.TrimSpace(string(n))
	if s == "" {
		return "", nil
	}
	if !strings.ContainsAny(s, "eE") {
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimLeft(s, "+-")
		whole, frac, _ := strings.Cut(s, ".")
		if whole == "" && frac == "" || !digits(whole) || !digits(frac) {
			return "", fmt.Errorf("%q is not a decimal number", string(n))
		}
		whole = strings.TrimLeft(whole, "0")
		frac = strings.TrimRight(frac, "0")
		if whole == "" {
			whole = "0"
		}
		out := whole
		if frac != "" {
			out += "." + frac
		}
		if neg && out != "0" {
			out = "-" + out
		}
		return model.Decimal(out), nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return "", fmt.Errorf("%q is not a decimal number", string(n))
	}
	for places := 0; places <= 20; places++ {
		scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(places)), nil)))
		if scaled.IsInt() {
			return model.Decimal(r.FloatString(places)), nil
		}
	}
	return model.Decimal(strings.TrimRight(strings.TrimRight(r.FloatString(20), "0"), ".")), nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// quantity parses a JSON number or numeric string as a float (quantities are
// not money). Empty is zero.
func quantity(n json.Number) (float64, error) {
	s := strings.TrimSpace(string(n))
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

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
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil, nil
	}
	t, err := timestamp(*s)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// fieldErr names the field of a record that failed to decode.
type fieldErr struct {
	field string
	err   error
}

func (e *fieldErr) Error() string { return fmt.Sprintf("field %s: %v", e.field, e.err) }

func (e *fieldErr) Unwrap() error { return e.err }

// fields collects the first decoding error of a record, naming its field.
type fields struct{ err error }

func (f *fields) dec(name string, n num) model.Decimal {
	d, err := decimal(json.Number(n))
	if err != nil && f.err == nil {
		f.err = &fieldErr{name, err}
	}
	return d
}

func (f *fields) qty(name string, n num) float64 {
	v, err := quantity(json.Number(n))
	if err != nil && f.err == nil {
		f.err = &fieldErr{name, err}
	}
	return v
}

func (f *fields) time(name string, s string) time.Time {
	if s == "" {
		if f.err == nil {
			f.err = &fieldErr{name, fmt.Errorf("missing")}
		}
		return time.Time{}
	}
	t, err := timestamp(s)
	if err != nil && f.err == nil {
		f.err = &fieldErr{name, err}
	}
	return t
}

func (f *fields) optTime(name string, s *string) *time.Time {
	t, err := optTime(s)
	if err != nil && f.err == nil {
		f.err = &fieldErr{name, err}
	}
	return t
}

func (f *fields) id(name string, v int64) string {
	if v <= 0 && f.err == nil {
		f.err = &fieldErr{name, fmt.Errorf("missing or not a positive id")}
	}
	return strconv.FormatInt(v, 10)
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
