package simkit

import (
	"encoding/json"
	"testing"
)

func TestCorruptNext(t *testing.T) {
	var b Base
	b.CorruptNext("Products", "Modified", "not a date")
	if got := string(b.Corrupt("customers", []byte(`{"Items":[{"Modified":"2026-01-01"}]}`))); got != `{"Items":[{"Modified":"2026-01-01"}]}` {
		t.Errorf("another endpoint's answer changed: %s", got)
	}
	var env struct {
		Pagination map[string]int
		Items      []map[string]any
	}
	out := b.Corrupt("products", []byte(`{"Pagination":{"Page":1},"Items":[{"Modified":"2026-01-01"},{"Modified":"2026-01-02"}]}`))
	if err := json.Unmarshal(out, &env); err != nil || env.Items[0]["Modified"] != "not a date" || env.Items[1]["Modified"] != "2026-01-02" || env.Pagination["Page"] != 1 {
		t.Errorf("envelope: %s (%v)", out, err)
	}
	if got := string(b.Corrupt("products", []byte(`{"Items":[{"Modified":"x"}]}`))); got != `{"Items":[{"Modified":"x"}]}` {
		t.Errorf("a corruption applied twice: %s", got)
	}
	b.CorruptNext("stock", "Qty", nil)
	var list []map[string]any
	if err := json.Unmarshal(b.Corrupt("STOCK", []byte(`[{"Qty":1}]`)), &list); err != nil || list[0]["Qty"] != nil {
		t.Errorf("bare list: %v %v", list, err)
	}
}
