package receiver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// fakeCodec signs with the hex HMAC-SHA256 of the body under keys["secret"]
// in X-Sig, and decodes {"events":[{"tenant","entity","id","deleted"}]}.
type fakeCodec struct {
	routing  connectors.WebhookRouting
	verifies atomic.Int64
}

const sigHeader = "X-Sig"

func sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (c *fakeCodec) Routing() connectors.WebhookRouting { return c.routing }

func (c *fakeCodec) Verify(h http.Header, body []byte, keys map[string][]byte, _ time.Time) error {
	c.verifies.Add(1)
	secret, ok := keys["secret"]
	if !ok {
		return fmt.Errorf("keys lack %q", "secret")
	}
	got, err := hex.DecodeString(h.Get(sigHeader))
	if err != nil || len(got) == 0 {
		return fmt.Errorf("unsigned: %w", connectors.ErrWebhookSignature)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return fmt.Errorf("signature mismatch: %w", connectors.ErrWebhookSignature)
	}
	return nil
}

type wireEvent struct {
	Tenant  string `json:"tenant,omitempty"`
	Entity  string `json:"entity"`
	ID      string `json:"id"`
	Deleted bool   `json:"deleted,omitempty"`
}

type wireDelivery struct {
	Events []wireEvent `json:"events"`
}

func (c *fakeCodec) Parse(_ http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	var d wireDelivery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("decoding the delivery: %w", err)
	}
	out := make([]connectors.WebhookEvent, 0, len(d.Events))
	for _, e := range d.Events {
		out = append(out, connectors.WebhookEvent{Entity: model.Kind(e.Entity), ID: e.ID, Deleted: e.Deleted, Tenant: e.Tenant})
	}
	return out, nil
}

func delivery(events ...wireEvent) []byte {
	b, err := json.Marshal(wireDelivery{Events: events})
	if err != nil {
		panic(err)
	}
	return b
}

// fakeCodecs maps vendors to codecs.
type fakeCodecs map[string]connectors.WebhookCodec

func (f fakeCodecs) Webhooks(typ string) (connectors.WebhookCodec, bool) {
	c, ok := f[typ]
	return c, ok
}

// fakeDirectory holds subscribers.
type fakeDirectory struct {
	mu   sync.Mutex
	subs []Subscriber
	err  error
}

func (d *fakeDirectory) add(s ...Subscriber) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.subs = append(d.subs, s...)
}

func (d *fakeDirectory) find(keep func(Subscriber) bool) ([]Subscriber, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	var out []Subscriber
	for _, s := range d.subs {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (d *fakeDirectory) ByRoute(_ context.Context, vendor, route string) (Subscriber, bool, error) {
	subs, err := d.find(func(s Subscriber) bool { return s.Type == vendor && string(s.UID) == route })
	if err != nil || len(subs) == 0 {
		return Subscriber{}, false, err
	}
	return subs[0], true, nil
}

func (d *fakeDirectory) ByTenant(_ context.Context, vendor, tenant string) ([]Subscriber, error) {
	return d.find(func(s Subscriber) bool { return s.Type == vendor && s.Tenant == tenant })
}

func (d *fakeDirectory) AllOf(_ context.Context, vendor string) ([]Subscriber, error) {
	return d.find(func(s Subscriber) bool { return s.Type == vendor })
}

// fakeKeys holds each ErpSync's keys and counts reads.
type fakeKeys struct {
	mu    sync.Mutex
	keys  map[types.UID]map[string][]byte
	reads atomic.Int64
	err   error
}

func newFakeKeys() *fakeKeys { return &fakeKeys{keys: map[types.UID]map[string][]byte{}} }

func (k *fakeKeys) set(uid types.UID, secret string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[uid] = map[string][]byte{"secret": []byte(secret)}
}

func (k *fakeKeys) Keys(_ context.Context, s Subscriber) (map[string][]byte, error) {
	k.reads.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return nil, k.err
	}
	d, ok := k.keys[s.UID]
	if !ok {
		return nil, fmt.Errorf("no Secret: %w", ErrNoKeys)
	}
	return maps.Clone(d), nil
}

// fakeDispatcher records batches; it may be slow or fail.
type fakeDispatcher struct {
	mu      sync.Mutex
	batches []Batch
	delay   time.Duration
	// fail makes the first fail calls fail.
	fail     int
	calls    int
	inFlight map[types.UID]int
	// overlap is set when two dispatches of one ErpSync ran at once.
	overlap bool
	started chan struct{}
}

func (d *fakeDispatcher) Dispatch(ctx context.Context, b Batch) error {
	d.mu.Lock()
	if d.inFlight == nil {
		d.inFlight = map[types.UID]int{}
	}
	d.inFlight[b.Subscriber.UID]++
	if d.inFlight[b.Subscriber.UID] > 1 {
		d.overlap = true
	}
	d.calls++
	failing := d.calls <= d.fail
	delay := d.delay
	started := d.started
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.inFlight[b.Subscriber.UID]--
		d.mu.Unlock()
	}()
	if started != nil {
		select {
		case started <- struct{}{}:
		default:
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if failing {
		return fmt.Errorf("the API server said no (call %d)", d.calls)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.batches = append(d.batches, b)
	return nil
}

func (d *fakeDispatcher) got() []Batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Batch(nil), d.batches...)
}

func (d *fakeDispatcher) callCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls
}

// summary sums an ErpSync's batches: counts and the set of targets
// ("entity/id" or "entity/id!" when deleted), and its overflow.
type summary struct {
	batches            int
	accepted, rejected int64
	targets            map[string]bool
	overflow           map[string]bool
}

func summarise(batches []Batch, uid types.UID) summary {
	s := summary{targets: map[string]bool{}, overflow: map[string]bool{}}
	for _, b := range batches {
		if b.Subscriber.UID != uid {
			continue
		}
		s.batches++
		s.accepted += b.Accepted
		s.rejected += b.Rejected
		for _, t := range b.Targets {
			k := t.Entity + "/" + t.ID
			if t.Deleted {
				k += "!"
			}
			s.targets[k] = true
		}
		for _, e := range b.Overflow {
			s.overflow[e] = true
		}
	}
	return s
}

func (s summary) targetList() string {
	var out []string
	for k := range s.targets {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
