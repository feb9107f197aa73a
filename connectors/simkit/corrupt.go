package simkit

import (
	"bytes"
	"encoding/json"
	"strings"
)

// corruption is a queued fault: the next answer of an endpoint carries value
// in field of its first list item.
type corruption struct {
	endpoint, field string
	value           any
}

// CorruptNext makes the next answer of endpoint (matched case-insensitively)
// carry value in field of the first item of its list: a document that parses
// but that the mapping must reject cleanly, naming entity, page and field.
func (b *Base) CorruptNext(endpoint, field string, value any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.corrupt = append(b.corrupt, corruption{endpoint: strings.ToLower(endpoint), field: field, value: value})
}

// Corrupt applies the corruption queued for endpoint, if any, to an answer's
// body (a bare list, or an envelope whose first list field is changed) and
// returns it; a body with no list is returned as it is.
func (b *Base) Corrupt(endpoint string, body []byte) []byte {
	endpoint = strings.ToLower(endpoint)
	b.mu.Lock()
	var c corruption
	found := false
	for i, x := range b.corrupt {
		if x.endpoint == endpoint {
			c, found = x, true
			b.corrupt = append(b.corrupt[:i], b.corrupt[i+1:]...)
			break
		}
	}
	b.mu.Unlock()
	if !found {
		return body
	}
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		// A bare list (Cin7 Omni).
		var items []map[string]any
		if err := json.Unmarshal(body, &items); err != nil || len(items) == 0 {
			return body
		}
		items[0][c.field] = c.value
		out, err := json.Marshal(items)
		if err != nil {
			return body
		}
		return out
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return body
	}
	for k, raw := range doc {
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
			continue
		}
		var items []map[string]any
		if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
			continue
		}
		items[0][c.field] = c.value
		list, err := json.Marshal(items)
		if err != nil {
			return body
		}
		doc[k] = list
		out, err := json.Marshal(doc)
		if err != nil {
			return body
		}
		return out
	}
	return body
}
