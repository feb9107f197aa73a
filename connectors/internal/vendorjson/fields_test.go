package vendorjson

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestFieldsKeepTheFirstError(t *testing.T) {
	parse := func(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }
	var f Fields
	if d := f.Decimal("price", json.Number("12.50")); d != "12.5" || f.Err != nil {
		t.Fatalf("Decimal = %q, %v", d, f.Err)
	}
	if got := f.OptTime("due", nil, parse); got != nil || f.Err != nil {
		t.Fatalf("OptTime(nil) = %v, %v", got, f.Err)
	}
	f.Quantity("qty", json.Number("lots"))
	f.Time("modified", "", parse)
	var fe *FieldErr
	if !errors.As(f.Err, &fe) || fe.Field != "qty" {
		t.Fatalf("first error %v, want the qty field's", f.Err)
	}
	var g Fields
	g.Time("modified", "", parse)
	if !errors.As(g.Err, &fe) || fe.Field != "modified" || fe.Err.Error() != "missing" {
		t.Fatalf("a missing time: %v", g.Err)
	}
	var h Fields
	bad := "yesterday"
	if got := h.OptTime("due", &bad, parse); got != nil || h.Err == nil {
		t.Fatalf("OptTime(bad) = %v, %v", got, h.Err)
	}
}
