package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

// OperationDelete is the operation of a Delete request.
const OperationDelete = "delete"

// Tombstone is one entry of a delete request: the record's key, when and
// how its deletion was learned, and whether its children go with it.
type Tombstone struct {
	Company  string     `json:"company"`
	Vendor   string     `json:"vendor"`
	Kind     model.Kind `json:"kind"`
	VendorID string     `json:"vendorId"`
	// At is when the deletion was learned (the operator's clock), RFC 3339
	// in UTC.
	At time.Time `json:"at"`
	// Via is how (model.DeletionSource).
	Via model.DeletionSource `json:"via"`
	// WithChildren says that the record's live children (the records
	// whose parent and parentKind name it) are marked deleted with it, at
	// the same time, via "parent-deleted", and theirs in turn. Always true
	// today: a receiver must refuse a request where it is false rather
	// than guess.
	WithChildren bool `json:"withChildren"`
}

// DeletePayload is the request body of the delete operation.
type DeletePayload struct {
	Version int         `json:"version"`
	Delete  []Tombstone `json:"delete"`
}

// EncodeDelete validates tombstones and returns the request body of the
// delete operation, its idempotency key and the number of tombstones sent
// (a key named twice is sent once, with its first tombstone), in kind and
// key order.
func EncodeDelete(ts []model.Tombstone) (body []byte, idempotencyKey string, n int, err error) {
	groups, kinds, err := rows.PlanTombstones(ts)
	if err != nil {
		return nil, "", 0, err
	}
	var out []Tombstone
	for _, k := range kinds {
		for _, t := range groups[k] {
			out = append(out, Tombstone{Company: t.Company, Vendor: t.Vendor, Kind: k, VendorID: t.VendorID,
				At: t.At, Via: model.DeletionSource(t.Via), WithChildren: true})
		}
	}
	body, err = json.Marshal(DeletePayload{Version: PayloadVersion, Delete: out})
	if err != nil {
		return nil, "", 0, fmt.Errorf("encode tombstones: %w", err)
	}
	return body, NewIdempotencyKey(body), len(out), nil
}

// DecodeDelete parses a delete request body into tombstones, checked as a
// sink would check them.
func DecodeDelete(body []byte) ([]model.Tombstone, error) {
	var p DeletePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("malformed delete request: %w", err)
	}
	if p.Version != PayloadVersion {
		return nil, fmt.Errorf("unsupported delete version %d", p.Version)
	}
	if p.Delete == nil {
		return nil, errors.New("no tombstones")
	}
	out := make([]model.Tombstone, len(p.Delete))
	for i, t := range p.Delete {
		if !t.WithChildren {
			return nil, errors.New("a tombstone without its children: this receiver always deletes a record's children with it")
		}
		out[i] = model.Tombstone{Key: model.Key{Company: t.Company, Vendor: t.Vendor, Kind: t.Kind, VendorID: t.VendorID}, At: t.At, Via: t.Via}
	}
	if _, _, err := rows.PlanTombstones(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Delete implements sinks.Sink: the tombstones go in one delete request
// (all or nothing at the receiver), which the receiver must confirm with
// their count; it returns how many records the receiver marked.
func (s *Sink) Delete(ctx context.Context, tombstones []model.Tombstone) (int, error) {
	if len(tombstones) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("webhook: delete: %w", err)
	}
	body, key, n, err := EncodeDelete(tombstones)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	msg, err := s.send(ctx, OperationDelete, body, key)
	if err != nil {
		return 0, err
	}
	var r Response
	if err := json.Unmarshal(msg, &r); err != nil || r.Tombstones != n || r.Deleted < 0 {
		return 0, fmt.Errorf("webhook %s: the receiver did not confirm the %d tombstones (it must answer {\"tombstones\": %d, \"deleted\": marked}; does it implement the %s operation?)", s.where, n, n, OperationDelete)
	}
	return r.Deleted, nil
}

// Live implements sinks.Sink: a webhook cannot read back what the receiver
// holds.
func (s *Sink) Live(ctx context.Context, sc sinks.Scope, fn func(model.LiveRecord) error) error {
	return sinks.ErrNoListing
}

// Purge implements sinks.Sink: the receiver keeps its tombstones as long as
// it likes; nothing is sent.
func (s *Sink) Purge(ctx context.Context, company, vendor string, before time.Time) (int, error) {
	return 0, nil
}
