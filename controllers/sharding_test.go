package controllers

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/sharding"
)

// fakeShards is a replica's sharding whose shards a test gives and takes.
type fakeShards struct {
	n       int
	mu      sync.Mutex
	held    map[int]*fakeTenure
	seq     uint64
	users   int
	changed chan struct{}
}

type fakeTenure struct {
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
}

func newFakeShards(n int) *fakeShards {
	return &fakeShards{n: n, held: map[int]*fakeTenure{}, changed: make(chan struct{}, 1)}
}

func (f *fakeShards) ShardOf(key types.NamespacedName) int {
	return sharding.Of(key.Namespace, key.Name, f.n)
}

func (f *fakeShards) Enter(s int) (context.Context, func(), bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.held[s]
	if t == nil {
		return nil, nil, false
	}
	f.users++
	var once sync.Once
	return t.ctx, func() {
		once.Do(func() {
			f.mu.Lock()
			f.users--
			f.mu.Unlock()
		})
	}, true
}

func (f *fakeShards) Held() map[int]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]uint64{}
	for s, t := range f.held {
		out[s] = t.id
	}
	return out
}

func (f *fakeShards) Changed() <-chan struct{} { return f.changed }

func (f *fakeShards) gain(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	f.seq++
	f.held[s] = &fakeTenure{id: f.seq, ctx: ctx, cancel: cancel}
	f.notify()
}

func (f *fakeShards) lose(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.held[s]; t != nil {
		t.cancel()
		delete(f.held, s)
	}
	f.notify()
}

func (f *fakeShards) working() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users
}

func (f *fakeShards) notify() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

func TestAnErpSyncOfAShardNotHeldIsNeitherSyncedNorWritten(t *testing.T) {
	h := newHarness(t)
	g := h.g
	fs := newFakeShards(3)
	h.shards = fs
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	o := h.erpsync("acme")
	shard := fs.ShardOf(clientKey(o))

	// Another replica's shard: no ERP call, no status write, no event.
	g.Consistently(func() int64 { return h.erp.calls.Load() + h.statusWrites.Load() }, 2*time.Second, 50*time.Millisecond).Should(BeZero())
	g.Expect(h.get("acme").Status.Phase).To(BeEmpty())
	g.Expect(h.events("acme")).To(BeEmpty())

	// The shard comes to this replica: its ErpSyncs are reconciled at once
	// (no other event would wake them).
	fs.gain(shard)
	h.ready("acme")
}

func TestAShardMovedMidSyncStopsWithoutAWriteAndResumesFromTheCheckpoint(t *testing.T) {
	h := newHarness(t)
	g := h.g
	fs := newFakeShards(3)
	h.shards = fs
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.startManager()
	o := h.erpsync("acme")
	key := clientKey(o)
	shard := fs.ShardOf(key)
	fs.gain(shard)
	h.waitCheckpoint("acme", model.KindProduct, 1)

	// The shard moves away mid-import: the sync stops and leaves its
	// tenure; it writes nothing (the new owner writes), so the status
	// still shows the checkpoint and phase Syncing for the next owner to
	// resume.
	writes := h.statusWrites.Load()
	fs.lose(shard)
	g.Eventually(func() bool { return h.reconciler.tracker.running(key) }, 10*time.Second, 10*time.Millisecond).Should(BeFalse())
	g.Expect(fs.working()).To(BeZero(), "the stopped sync left its shard")
	g.Consistently(func() int64 { return h.statusWrites.Load() }, time.Second, 50*time.Millisecond).Should(Equal(writes))
	stopped := h.get("acme")
	g.Expect(stopped.Status.Phase).To(Equal(erpv1.PhaseSyncing))
	g.Expect(checkpointPage(stopped, model.KindProduct)).To(Equal(1))
	for _, e := range h.events("acme") {
		g.Expect(e.Reason).NotTo(Equal("Suspended"))
	}

	// A request while another replica holds the shard starts nothing here.
	calls := len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "while-away"}
	})
	g.Consistently(func() int { return len(h.erp.log()) }, time.Second, 50*time.Millisecond).Should(Equal(calls))

	// The shard comes back (as it would to the replica that gains it): the
	// import resumes after page 1 and does not start over.
	close(h.erp.block)
	fs.gain(shard)
	g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	for _, req := range h.erp.log()[calls:] {
		if req.Entity == model.KindProduct && req.Since.IsZero() {
			g.Expect(req.Page).To(BeNumerically(">=", 2), "products resume after the checkpointed page")
		}
	}
	g.Expect(h.sink.Len()).To(Equal(26))
}
