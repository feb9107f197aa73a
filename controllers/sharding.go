package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Sharding decides which ErpSyncs this replica syncs, when several
// replicas share them (internal/sharding: one Lease per shard). With it,
// Reconcile passes over the ErpSyncs of shards this replica does not hold,
// a sync runs only inside its shard's tenure and stops when the shard
// moves (StopMoved: no status written, the new owner resumes from the
// checkpoints in status), and every ErpSync of a shard this replica gains
// is reconciled at once.
type Sharding interface {
	// ShardOf returns the shard of an ErpSync.
	ShardOf(key types.NamespacedName) int
	// Enter registers work on a held shard: ctx ends when the shard moves
	// away, and the shard is not handed on before leave is called. false
	// when the shard is not held.
	Enter(shard int) (ctx context.Context, leave func(), ok bool)
	// Held returns the shards held now, each with its tenure's number.
	Held() map[int]uint64
	// Changed receives after the held shards changed.
	Changed() <-chan struct{}
}

// holdShard reports whether this replica syncs the ErpSync key now
// (always, without sharding); when it does, the shard is not handed on
// before leave is called, so that a reconcile's status writes end before
// the next owner starts.
func (r *ErpSyncReconciler) holdShard(key types.NamespacedName) (leave func(), ok bool) {
	if r.Shards == nil {
		return func() {}, true
	}
	_, leave, ok = r.Shards.Enter(r.Shards.ShardOf(key))
	return leave, ok
}

// enterShard returns the parent context of work on key within its shard's
// tenure: it ends, with the cause StopMoved, when the shard moves away;
// leave must be called once the work has ended. false: this replica does
// not hold the shard.
func (r *ErpSyncReconciler) enterShard(key types.NamespacedName) (context.Context, func(), bool) {
	if r.Shards == nil {
		return r.baseCtx, func() {}, true
	}
	shardCtx, leave, ok := r.Shards.Enter(r.Shards.ShardOf(key))
	if !ok {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(r.baseCtx)
	stop := context.AfterFunc(shardCtx, func() { cancel(stopError{StopMoved}) })
	return ctx, func() {
		stop()
		cancel(nil)
		leave()
	}, true
}

// shardChanges is the source that reconciles every ErpSync of a shard this
// replica gains (Reconcile passed over them while another replica held
// it), and forgets the per-object metrics of a shard it lost (their owner
// reports them now).
func (r *ErpSyncReconciler) shardChanges(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	go func() {
		logger := log.FromContext(ctx).WithName("shards")
		known := map[int]uint64{}
		retry := time.NewTimer(0)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.Shards.Changed():
			case <-retry.C:
			}
			held := r.Shards.Held()
			gained, lost := map[int]bool{}, map[int]bool{}
			for s, tenure := range held {
				if known[s] != tenure {
					gained[s] = true
				}
			}
			for s := range known {
				if _, ok := held[s]; !ok {
					lost[s] = true
				}
			}
			if len(gained) == 0 && len(lost) == 0 {
				continue
			}
			var list erpv1.ErpSyncList
			if err := r.List(ctx, &list); err != nil {
				logger.Error(err, "listing the ErpSyncs of changed shards; trying again")
				retry.Reset(time.Second)
				continue
			}
			known = held
			n := 0
			for i := range list.Items {
				key := types.NamespacedName{Namespace: list.Items[i].Namespace, Name: list.Items[i].Name}
				s := r.Shards.ShardOf(key)
				switch {
				case gained[s]:
					q.Add(reconcile.Request{NamespacedName: key})
					n++
				case lost[s]:
					metrics.DeleteObject(key.Namespace, key.Name)
				}
			}
			logger.Info("held shards changed", "gained", len(gained), "lost", len(lost), "enqueued", n)
		}
	}()
	return nil
}
