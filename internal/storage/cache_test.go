package storage

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/state"
)

// recStore records the operations reaching a store.
type recStore struct {
	state.BytesStore
	ops []string
}

func (s *recStore) Get(key []byte) ([]byte, error) {
	s.ops = append(s.ops, "get "+string(key))
	return s.BytesStore.Get(key)
}

func (s *recStore) Put(key, value []byte) error {
	s.ops = append(s.ops, "put "+string(key)+"="+string(value))
	return s.BytesStore.Put(key, value)
}

func (s *recStore) Delete(key []byte) error {
	s.ops = append(s.ops, "delete "+string(key))
	return s.BytesStore.Delete(key)
}

// takeOps returns and clears the recorded operations.
func (s *recStore) takeOps() []string {
	ops := s.ops
	s.ops = nil
	return ops
}

// flushRec records listener calls as "key=value old=old ts=n" ("-" for nil).
type flushRec struct{ calls []string }

func (r *flushRec) listener(key, value, old []byte, ts int64) error {
	r.calls = append(r.calls, fmt.Sprintf("%s=%s old=%s ts=%d", key, orDash(value), orDash(old), ts))
	return nil
}

func (r *flushRec) take() []string {
	c := r.calls
	r.calls = nil
	return c
}

func orDash(b []byte) string {
	if b == nil {
		return "-"
	}
	return string(b)
}

// newCached returns a cached store over a recorded in-memory store, with a
// clock the caller advances.
func newCached(t *testing.T, maxBytes int64) (*CachedStore, *recStore, *flushRec, *int64) {
	t.Helper()
	db, _ := openMem(t)
	below := &recStore{BytesStore: db.Task("0_0").Open("s", state.InMemory)}
	clock := new(int64)
	c := NewCache(maxBytes, clock)
	cs := c.Wrap(below)
	rec := &flushRec{}
	cs.SetListener(rec.listener)
	return cs, below, rec, clock
}

func check[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func TestCacheCollapsesWrites(t *testing.T) {
	for _, readFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-first=%v", readFirst), func(t *testing.T) {
			cs, below, rec, clock := newCached(t, 1<<20)
			mustPut(t, below.BytesStore, "k", "v0")
			if readFirst {
				if v := mustGet(t, cs, "k"); string(v) != "v0" {
					t.Fatalf("Get = %q", v)
				}
			}
			below.takeOps()
			for i := 1; i <= 10; i++ {
				*clock = int64(100 + i)
				mustPut(t, cs, "k", fmt.Sprintf("v%d", i))
			}
			if v := mustGet(t, cs, "k"); string(v) != "v10" {
				t.Errorf("Get = %q, want v10", v)
			}
			check(t, "store ops before Flush", below.takeOps(), nil)
			if err := cs.c.Flush(); err != nil {
				t.Fatal(err)
			}
			check(t, "listener calls", rec.take(), []string{"k=v10 old=v0 ts=110"})
			wantOps := []string{"get k", "put k=v10"}
			if readFirst {
				wantOps = wantOps[1:] // the old value was remembered
			}
			check(t, "store ops at Flush", below.takeOps(), wantOps)

			// Flushed entries stay cached, clean.
			if v := mustGet(t, cs, "k"); string(v) != "v10" {
				t.Errorf("Get after Flush = %q", v)
			}
			if err := cs.c.Flush(); err != nil {
				t.Fatal(err)
			}
			check(t, "second Flush", append(below.takeOps(), rec.take()...), nil)
			// The next write's old value is the flushed one.
			mustPut(t, cs, "k", "v11")
			if err := cs.c.Flush(); err != nil {
				t.Fatal(err)
			}
			check(t, "listener after rewrite", rec.take(), []string{"k=v11 old=v10 ts=110"})
		})
	}
}

func TestCacheEviction(t *testing.T) {
	// Entries of 1-byte keys and values: room for three.
	cs, below, rec, _ := newCached(t, 3*(CacheEntryOverhead+2))
	mustPut(t, below.BytesStore, "c", "old-c")
	mustPut(t, cs, "a", "1")
	mustPut(t, cs, "b", "2")
	mustPut(t, cs, "c", "3")
	below.takeOps()
	if v := mustGet(t, cs, "a"); string(v) != "1" { // a becomes most recent
		t.Fatalf("Get(a) = %q", v)
	}
	mustPut(t, cs, "d", "4") // evicts b, the least recently used
	check(t, "store ops evicting b", below.takeOps(), []string{"get b", "put b=2"})
	check(t, "listener evicting b", rec.take(), []string{"b=2 old=- ts=0"})
	mustPut(t, cs, "e", "5") // evicts c
	check(t, "listener evicting c", rec.take(), []string{"c=3 old=old-c ts=0"})
	if got, want := cs.c.size, int64(3*(CacheEntryOverhead+2)); got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}

	// Evicted keys read through again; clean entries leave silently.
	if err := cs.c.Flush(); err != nil {
		t.Fatal(err)
	}
	rec.take()
	below.takeOps()
	if v := mustGet(t, cs, "b"); string(v) != "2" { // evicts a (clean)
		t.Errorf("Get(b) = %q", v)
	}
	check(t, "store ops reading b", below.takeOps(), []string{"get b"})
	check(t, "listener evicting clean entries", rec.take(), nil)

	// An entry larger than the whole cache goes down at once.
	big := string(bytes.Repeat([]byte("x"), 1000))
	mustPut(t, cs, "big", big)
	check(t, "store ops of an oversized entry", below.takeOps(), []string{"get big", "put big=" + big})
}

func TestCacheDeletes(t *testing.T) {
	cs, below, rec, _ := newCached(t, 1<<20)
	mustPut(t, below.BytesStore, "a", "1")
	mustPut(t, below.BytesStore, "b", "2")
	mustGet(t, cs, "a")
	mustDelete(t, cs, "a")
	mustDelete(t, cs, "b")
	mustDelete(t, cs, "none")
	if v := mustGet(t, cs, "a"); v != nil {
		t.Errorf("Get of a cached delete = %q", v)
	}
	check(t, "scan with cached deletes", scanAll(t, cs, nil, nil, false), nil)
	if v := mustGet(t, below.BytesStore, "a"); string(v) != "1" {
		t.Errorf("delete reached the store before Flush: a=%q", v)
	}
	below.takeOps()
	if err := cs.c.Flush(); err != nil {
		t.Fatal(err)
	}
	// A delete that finds nothing is written down without a listener call.
	check(t, "listener", rec.take(), []string{"a=- old=1 ts=0", "b=- old=2 ts=0"})
	check(t, "store ops", below.takeOps(), []string{"delete a", "get b", "delete b", "get none", "delete none"})
	check(t, "store after Flush", scanAll(t, below.BytesStore, nil, nil, false), nil)
}

func TestCacheFlushOrder(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	c := NewCache(1<<20, nil)
	var calls []string
	listener := func(name string) func(key, value, old []byte, ts int64) error {
		return func(key, value, _ []byte, _ int64) error {
			calls = append(calls, name+":"+string(key)+"="+string(value))
			return nil
		}
	}
	s1 := c.Wrap(ts.Open("s1", state.Persistent))
	s2 := c.Wrap(ts.Open("s2", state.InMemory))
	s1.SetListener(listener("s1"))
	s2.SetListener(listener("s2"))
	mustPut(t, s2, "x", "1")
	mustPut(t, s1, "b", "1")
	mustPut(t, s1, "a", "1")
	mustPut(t, s1, "b", "2")
	mustPut(t, s2, "a", "1")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	check(t, "flush order", calls, []string{"s1:b=2", "s1:a=1", "s2:x=1", "s2:a=1"})
}

// TestCacheListenerWrites checks a listener that writes to a store of the
// same cache (a downstream processor's store) during a flush.
func TestCacheListenerWrites(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	for _, maxBytes := range []int64{1 << 20, 2 * (CacheEntryOverhead + 8), 1} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			c := NewCache(maxBytes, nil)
			name := fmt.Sprint("up", maxBytes)
			up := c.Wrap(ts.Open(name, state.InMemory))
			down := c.Wrap(ts.Open(name+"-down", state.InMemory))
			var downCalls []string
			down.SetListener(func(key, value, _ []byte, _ int64) error {
				downCalls = append(downCalls, string(key)+"="+string(value))
				return nil
			})
			up.SetListener(func(key, value, _ []byte, _ int64) error {
				// Downstream writes the upstream value to its own store,
				// and to the upstream store (a cycle of one step).
				if err := down.Put(key, value); err != nil {
					return err
				}
				if string(key) == "k0" && string(value) == "v" {
					return up.Put(key, []byte("again"))
				}
				return nil
			})
			for i := range 5 {
				mustPut(t, up, fmt.Sprintf("k%d", i), "v")
			}
			if err := c.Flush(); err != nil {
				t.Fatal(err)
			}
			for _, cs := range []*CachedStore{up, down} {
				if cs.dirtyHead != nil {
					t.Errorf("%s has dirty entries after Flush", cs.Name())
				}
			}
			got := scanAll(t, down.below, nil, nil, false)
			check(t, "downstream store", got, []string{"k0=again", "k1=v", "k2=v", "k3=v", "k4=v"})
			if v := mustGet(t, up.below, "k0"); string(v) != "again" {
				t.Errorf("upstream k0 = %q", v)
			}
		})
	}
}

// TestCacheModel runs random operations on cached stores of both engines
// with caches small enough to evict, checking Get and Scan (both
// directions, random bounds) against a map, and the listener's stream
// (values and old values) against a model of what is below.
func TestCacheModel(t *testing.T) {
	for _, engine := range engines {
		for _, maxBytes := range []int64{1, 4 * (CacheEntryOverhead + 4), 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", engine, maxBytes), func(t *testing.T) {
				db, _ := openMem(t)
				ts := db.Task("0_0")
				c := NewCache(maxBytes, nil)
				cs := c.Wrap(ts.Open("s", engine))
				model := map[string]string{}      // what reads must see
				downstream := map[string]string{} // what the listener reported
				cs.SetListener(func(key, value, old []byte, _ int64) error {
					prev, had := downstream[string(key)]
					if had != (old != nil) || (had && prev != string(old)) {
						t.Errorf("listener old for %s: got %s, want %v/%q", key, orDash(old), had, prev)
					}
					if value == nil {
						delete(downstream, string(key))
					} else {
						downstream[string(key)] = string(value)
					}
					return nil
				})
				rng := rand.New(rand.NewPCG(1, uint64(maxBytes)))
				key := func() string { return fmt.Sprintf("k%02d", rng.IntN(30)) }
				for step := range 3000 {
					switch op := rng.IntN(100); {
					case op < 40:
						k, v := key(), fmt.Sprint(rng.IntN(1000))
						mustPut(t, cs, k, v)
						model[k] = v
					case op < 55:
						k := key()
						mustDelete(t, cs, k)
						delete(model, k)
					case op < 75:
						k := key()
						want, ok := model[k]
						got := mustGet(t, cs, k)
						if (got != nil) != ok || string(got) != want {
							t.Fatalf("step %d: Get(%s) = %s, want %q (%v)", step, k, orDash(got), want, ok)
						}
					case op < 95:
						var lower, upper []byte
						if rng.IntN(4) > 0 {
							lower = []byte(key())
						}
						if rng.IntN(4) > 0 {
							upper = []byte(key())
						}
						reverse := rng.IntN(2) == 0
						var want []string
						for _, k := range slices.Sorted(maps.Keys(model)) {
							if (lower == nil || k >= string(lower)) && (upper == nil || k < string(upper)) {
								want = append(want, k+"="+model[k])
							}
						}
						if reverse {
							slices.Reverse(want)
						}
						limit := len(want)
						if rng.IntN(3) == 0 && limit > 0 {
							limit = rng.IntN(limit) // stop early
						}
						var got []string
						err := cs.Scan(lower, upper, reverse, func(k, v []byte) bool {
							if len(got) == limit {
								return false
							}
							got = append(got, string(k)+"="+string(v))
							return true
						})
						if err != nil {
							t.Fatal(err)
						}
						if !slices.Equal(got, want[:limit]) {
							t.Fatalf("step %d: Scan(%q, %q, reverse=%v):\n got %v\nwant %v", step, lower, upper, reverse, got, want[:limit])
						}
					default:
						if err := c.Flush(); err != nil {
							t.Fatal(err)
						}
						if !maps.Equal(model, downstream) {
							t.Fatalf("step %d: after Flush the listener reported\n%v\nwant\n%v", step, downstream, model)
						}
					}
					if maxBytes > 0 && c.size > maxBytes {
						t.Fatalf("step %d: size %d over %d", step, c.size, maxBytes)
					}
				}
			})
		}
	}
}

// TestCacheWriteDownSetsClock: while an entry is written down (flush or
// eviction), the clock reads the entry's own time, so changelog and
// downstream records of the write carry it; afterwards the clock is back.
func TestCacheWriteDownSetsClock(t *testing.T) {
	cs, _, _, clock := newCached(t, 2*(CacheEntryOverhead+2))
	var seen []string
	cs.SetListener(func(key, _, _ []byte, ts int64) error {
		seen = append(seen, fmt.Sprintf("%s ts=%d clock=%d", key, ts, *clock))
		return nil
	})
	*clock = 10
	mustPut(t, cs, "a", "1")
	*clock = 20
	mustPut(t, cs, "b", "2")
	*clock = 30
	mustPut(t, cs, "c", "3") // evicts a
	if *clock != 30 {
		t.Errorf("clock %d after an eviction, want 30", *clock)
	}
	*clock = 40
	if err := cs.c.Flush(); err != nil {
		t.Fatal(err)
	}
	if *clock != 40 {
		t.Errorf("clock %d after Flush, want 40", *clock)
	}
	check(t, "writes down", seen, []string{"a ts=10 clock=10", "b ts=20 clock=20", "c ts=30 clock=30"})
}
