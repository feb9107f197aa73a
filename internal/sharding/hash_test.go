package sharding

import (
	"fmt"
	"math"
	"testing"
)

// keys returns n ErpSync keys shaped as a platform names them: a few
// hundred tenant namespaces, sequential names.
func keys(n int) [][2]string {
	out := make([][2]string, 0, n)
	for i := range n {
		out = append(out, [2]string{fmt.Sprintf("tenant-%03d", i%300), fmt.Sprintf("company-%d", i)})
	}
	return out
}

func TestOfIsInRangeAndStable(t *testing.T) {
	for _, n := range []int{-1, 0, 1, 2, 3, 7, 64} {
		for _, k := range keys(500) {
			s := Of(k[0], k[1], n)
			if n < 2 && s != 0 {
				t.Fatalf("Of(%v, %d) = %d, want 0", k, n, s)
			}
			if n >= 2 && (s < 0 || s >= n) {
				t.Fatalf("Of(%v, %d) = %d, outside [0, %d)", k, n, s, n)
			}
			if again := Of(k[0], k[1], n); again != s {
				t.Fatalf("Of(%v, %d) gave %d then %d", k, n, s, again)
			}
		}
	}
	// The separator matters: "a/bc" and "ab/c" are different ErpSyncs.
	same := 0
	for i := range 200 {
		ns, name := fmt.Sprintf("ns%d", i), "x"
		if Of(ns, name, 1000) == Of(ns+name[:1], "", 1000) {
			same++
		}
	}
	if same > 10 {
		t.Errorf("%d of 200 keys hash like their concatenation without the separator", same)
	}
}

// TestOfDistribution checks each shard's share of 30,000 keys is within
// five standard deviations of a uniform draw's (a few percent), and a
// chi-square test of uniformity.
func TestOfDistribution(t *testing.T) {
	const total = 30000
	for _, n := range []int{2, 3, 4, 5, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			counts := make([]int, n)
			for _, k := range keys(total) {
				counts[Of(k[0], k[1], n)]++
			}
			want := float64(total) / float64(n)
			sd := math.Sqrt(want * (1 - 1/float64(n)))
			chi := 0.0
			for s, c := range counts {
				if d := math.Abs(float64(c) - want); d > 5*sd {
					t.Errorf("shard %d of %d has %d keys, %.1f%% (%.1f standard deviations) off an even share of %.0f", s, n, c, 100*d/want, d/sd, want)
				}
				chi += (float64(c) - want) * (float64(c) - want) / want
			}
			// The 99.9th percentile of chi-square with up to 9 degrees of
			// freedom is 27.9.
			if chi > 27.9 {
				t.Errorf("chi-square %.1f over %d shards: not uniform (counts %v)", chi, n, counts)
			}
			t.Logf("%d shards: %v (chi-square %.2f)", n, counts, chi)
		})
	}
}

// TestOfMovesOnlyWhatChangesOwner checks the consistency that makes a
// change of replica count cheap: from n to n+1 shards only keys that go to
// the new shard move (about 1/(n+1) of them); from n+1 to n only the keys
// of the removed shard move.
func TestOfMovesOnlyWhatChangesOwner(t *testing.T) {
	const total = 30000
	for _, c := range []struct{ from, to int }{{3, 4}, {4, 3}, {2, 3}, {9, 10}} {
		t.Run(fmt.Sprintf("%d-%d", c.from, c.to), func(t *testing.T) {
			moved := 0
			for _, k := range keys(total) {
				a, b := Of(k[0], k[1], c.from), Of(k[0], k[1], c.to)
				if a == b {
					continue
				}
				moved++
				if c.to > c.from && b < c.from {
					t.Fatalf("%v moved from shard %d to %d, an old shard, when growing %d->%d", k, a, b, c.from, c.to)
				}
				if c.to < c.from && a < c.to {
					t.Fatalf("%v moved from shard %d to %d, though shard %d remains, when shrinking %d->%d", k, a, b, a, c.from, c.to)
				}
			}
			bigger := max(c.from, c.to)
			want := float64(total) / float64(bigger)
			if d := math.Abs(float64(moved)-want) / want; d > 0.05 {
				t.Errorf("%d of %d keys moved going %d->%d, want about %.0f (1/%d)", moved, total, c.from, c.to, want, bigger)
			}
			t.Logf("%d->%d shards: %d of %d keys moved (%.1f%%; ideal %.1f%%)", c.from, c.to, moved, total, 100*float64(moved)/total, 100/float64(bigger))
		})
	}
}

func BenchmarkOf(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		_ = Of("tenant-042", "company-12345", 7)
	}
}
