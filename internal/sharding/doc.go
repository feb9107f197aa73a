// Package sharding lets every replica of the manager work: the ErpSyncs are
// split into shards, one per replica of a StatefulSet, and each shard is
// synced by the one replica that holds its Lease.
//
// # Which shard an ErpSync belongs to
//
// Shards are numbered 0..N-1, N being --shards (the StatefulSet's replica
// count); replica k (its ordinal, from --shard-ordinal or the pod name's
// "-k" suffix) owns shard k. An ErpSync's shard is a jump consistent hash
// of its namespace/name into N (Of). Every replica computes it from the key
// alone, so no assignment is stored, and a change of N moves only the
// ErpSyncs whose shard changes: about 1/N of them, the least any scheme
// can. Argo CD's application controller shards clusters the same way
// (replica count and ordinal, a stable hash); unlike its first design, a
// replica here does not trust its ordinal alone: it syncs a shard only
// while it holds the shard's Lease.
//
// Label shards (--watch-label-selector) keep working beside it: each
// selector is a separate set of shards with its own Lease names (Prefix).
//
// # Leases
//
// Shard i has a coordination.k8s.io Lease "<prefix>-shard-<i>" in the
// manager's namespace, and replica k a presence Lease "<prefix>-replica-<k>"
// that it renews as long as it runs. Both carry N (ShardsAnnotation).
//
//   - A replica always contends for its own shard: it takes the Lease when
//     it is absent, released, or expired.
//   - It contends for another replica's shard only while that replica is
//     absent: its shard Lease expired (or released) and its presence Lease
//     stale, released or written with another N. Contenders wait their turn
//     (the shard's successor first, the next one a retry period later), so a
//     dead replica's shard goes to one replica without a scramble.
//   - A replica holding another's shard hands it back as soon as that
//     replica's presence is fresh again: it stops the shard's syncs, waits
//     for them to end, and only then releases the Lease.
//
// Expiry is judged as client-go's leader election judges it, never on
// another machine's clock: a Lease is expired when its resourceVersion has
// not changed for its lease duration, measured on the observer's own clock
// from when it first saw that version. Every take is an update under the
// resourceVersion the taker observed (or a create), so the API server lets
// one replica win.
//
// # Never two at once
//
// The holder renews every retry period. If it has not renewed for the
// renew deadline (a timer, independent of the renew loop, which may hang
// on the API server), it stops the shard's syncs at once, as
// controller-runtime's leader election stops the whole process. Another
// replica takes the Lease at the earliest a lease duration after it saw
// the last renewal, which is after the holder sent it; the holder's syncs
// therefore have lease duration - renew deadline (5 s at the defaults) to
// end. A stopped sync ends at once except for one bounded write to the CRM
// of the pages it had read (the engine's stop flush); the CRM keeps the
// newest version of each record, so even that write cannot undo the new
// owner's. A sync that moves writes no status (controllers.StopMoved): the
// new owner reads the checkpoints already in status and resumes.
//
// A hand-back and a shutdown (ReleaseOnCancel) go further: they keep
// renewing while the shard's syncs end and release the Lease only after the
// last one has ended, so the next owner never overlaps them.
//
// # A change of N
//
// Replicas that disagree on N disagree on every ErpSync's owner, and one
// Lease per shard does not stop that: shard 1 of 3 and shard 3 of 4 are
// different Leases that may cover the same ErpSync. So the larger N wins
// and the smaller yields: a replica that sees a live shard Lease written
// with a larger N stops its syncs and releases its Leases; one that sees a
// live Lease written with a smaller N holds its Leases but syncs nothing
// until those are gone. A replica checks, by listing the Leases after
// every take, before it syncs anything, so of two replicas that take
// Leases at the same moment the later one always sees the earlier. During
// the StatefulSet's rollout of a new replica count the replicas already on
// the larger count sync every shard; no ErpSync is synced under two counts
// at once.
package sharding
