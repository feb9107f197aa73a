package vendorjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// FieldErr names the field of a document decoded into a struct that failed
// to convert (the struct-decoding connectors' counterpart of FieldError).
type FieldErr struct {
	Field string
	Err   error
}

func (e *FieldErr) Error() string { return fmt.Sprintf("field %s: %v", e.Field, e.Err) }

func (e *FieldErr) Unwrap() error { return e.Err }

// Fields collects the first conversion error of a document decoded into a
// struct, naming its field; the conversions return their zero value on
// error so that mapping can go on and report once.
type Fields struct{ Err error }

// Fail records err for field unless an earlier error was recorded.
func (f *Fields) Fail(field string, err error) {
	if err != nil && f.Err == nil {
		f.Err = &FieldErr{field, err}
	}
}

// Decimal converts a JSON number to an exact decimal.
func (f *Fields) Decimal(field string, n json.Number) model.Decimal {
	d, err := Decimal(n)
	f.Fail(field, err)
	return d
}

// Quantity converts a JSON number to a quantity.
func (f *Fields) Quantity(field string, n json.Number) float64 {
	v, err := Quantity(n)
	f.Fail(field, err)
	return v
}

// Time parses a required time with the vendor's parser.
func (f *Fields) Time(field, s string, parse func(string) (time.Time, error)) time.Time {
	if s == "" {
		f.Fail(field, errors.New("missing"))
		return time.Time{}
	}
	t, err := parse(s)
	f.Fail(field, err)
	return t
}

// OptTime parses a nullable time with the vendor's parser: nil for null or
// blank.
func (f *Fields) OptTime(field string, s *string, parse func(string) (time.Time, error)) *time.Time {
	if s == nil || strings.TrimSpace(*s) == "" {
		return nil
	}
	t, err := parse(*s)
	if err != nil {
		f.Fail(field, err)
		return nil
	}
	return &t
}
