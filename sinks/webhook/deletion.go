package webhook

import (
	"context"
	"errors"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// errDeletionPending is returned until this sink stores tombstones.
var errDeletionPending = errors.New("webhook sink: deletions are not stored yet")

// Delete implements sinks.Sink.
func (s *Sink) Delete(ctx context.Context, tombstones []model.Tombstone) (int, error) {
	return 0, errDeletionPending
}

// Live implements sinks.Sink.
func (s *Sink) Live(ctx context.Context, sc sinks.Scope, fn func(model.LiveRecord) error) error {
	return sinks.ErrNoListing
}

// Purge implements sinks.Sink.
func (s *Sink) Purge(ctx context.Context, company, vendor string, before time.Time) (int, error) {
	return 0, nil
}
