package sharding

import (
	"hash/fnv"
)

// Of returns the shard, in [0, n), of the ErpSync namespace/name: a jump
// consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent
// Hash Algorithm", 2014) of a 64-bit hash of the key. It depends on the key
// and n only, so every replica computes the same owner. When n grows to
// n+1, only the keys that move to the new shard move (about 1/(n+1) of
// them); when it shrinks, only the keys of the removed shard move. n < 2
// gives 0.
func Of(namespace, name string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return int(jump(mix(h.Sum64()), int32(min(n, 1<<31-1))))
}

// mix is splitmix64's finaliser: FNV's low bits vary little between keys
// that differ in their last byte, and jump reads the key through a
// multiplicative generator; mixing spreads every input bit over the word.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// jump is the jump consistent hash of key into n buckets.
func jump(key uint64, n int32) int32 {
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int32(b)
}
