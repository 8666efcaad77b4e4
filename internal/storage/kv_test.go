package storage

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
)

// layout is a way to build a store: an engine, optionally behind a cache.
type layout struct {
	name       string
	engine     state.Engine
	cached     bool
	cacheBytes int64
}

var layouts = []layout{
	{name: "persistent", engine: state.Persistent},
	{name: "in-memory", engine: state.InMemory},
	{name: "persistent/cache", engine: state.Persistent, cached: true, cacheBytes: 1 << 20},
	{name: "in-memory/cache", engine: state.InMemory, cached: true, cacheBytes: 1 << 20},
	// Room for about three entries: most writes evict.
	{name: "persistent/tiny-cache", engine: state.Persistent, cached: true, cacheBytes: 3 * (CacheEntryOverhead + 8)},
}

// testStore is a store built by a layout.
type testStore struct {
	ts    *TaskState
	cache *Cache // nil when not cached
	bytes state.BytesStore
}

func (l layout) open(t testing.TB, db *DB, task, name string) testStore {
	t.Helper()
	ts := db.Task(task)
	var s state.BytesStore = ts.Open(name, l.engine)
	var c *Cache
	if l.cached {
		c = NewCache(l.cacheBytes, nil)
		s = c.Wrap(s)
	}
	return testStore{ts: ts, cache: c, bytes: s}
}

// flush flushes the store's cache, if any.
func (s testStore) flush(t testing.TB) {
	t.Helper()
	if s.cache != nil {
		if err := s.cache.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

func collect[K, V any](seq iter.Seq2[K, V]) []string {
	var out []string
	for k, v := range seq {
		out = append(out, fmt.Sprintf("%v=%v", k, v))
	}
	return out
}

func TestKeyValueStore(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			db, _ := openMem(t)
			st := l.open(t, db, "0_0", "kv")
			kv := state.NewKeyValueStore(st.bytes, serde.String, serde.String)
			if kv.Name() != "kv" {
				t.Errorf("Name %q", kv.Name())
			}
			ok := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}

			if _, found, err := kv.Get("a"); found || err != nil {
				t.Errorf("Get of absent key: found=%v err=%v", found, err)
			}
			for _, k := range []string{"d", "b", "a", "c", "d\x00", "da", "e", "ba"} {
				ok(kv.Put(k, "v"+k))
			}
			if v, found, err := kv.Get("b"); v != "vb" || !found || err != nil {
				t.Errorf("Get(b) = %q, %v, %v", v, found, err)
			}
			// "" is a value, distinct from none.
			ok(kv.Put("empty", ""))
			if v, found, err := kv.Get("empty"); v != "" || !found || err != nil {
				t.Errorf("Get(empty) = %q, %v, %v", v, found, err)
			}
			existing, found, err := kv.PutIfAbsent("a", "other")
			if existing != "va" || !found || err != nil {
				t.Errorf("PutIfAbsent(a) = %q, %v, %v", existing, found, err)
			}
			if _, found, err := kv.PutIfAbsent("f", "vf"); found || err != nil {
				t.Errorf("PutIfAbsent(f) found=%v err=%v", found, err)
			}
			old, found, err := kv.Delete("empty")
			if old != "" || !found || err != nil {
				t.Errorf("Delete(empty) = %q, %v, %v", old, found, err)
			}
			if _, found, err := kv.Delete("nope"); found || err != nil {
				t.Errorf("Delete(nope) found=%v err=%v", found, err)
			}

			all := []string{"a=va", "b=vb", "ba=vba", "c=vc", "d=vd", "d\x00=vd\x00", "da=vda", "e=ve", "f=vf"}
			reversed := slices.Clone(all)
			slices.Reverse(reversed)
			for _, tc := range []struct {
				name string
				seq  iter.Seq2[string, string]
				want []string
			}{
				{"All", kv.All(), all},
				{"Range(b,d)", kv.Range("b", "d"), []string{"b=vb", "ba=vba", "c=vc", "d=vd"}},
				{"ReverseRange(b,d)", kv.ReverseRange("b", "d"), []string{"d=vd", "c=vc", "ba=vba", "b=vb"}},
				{"Range(d,d)", kv.Range("d", "d"), []string{"d=vd"}},
				{"Range(d,c)", kv.Range("d", "c"), nil},
				{"Range(,z)", kv.Range("", "z"), all},
				{"ReverseRange(a,f)", kv.ReverseRange("a", "f"), reversed},
				{"Prefix(d)", kv.Prefix("d"), []string{"d=vd", "d\x00=vd\x00", "da=vda"}},
				{"Prefix(b)", kv.Prefix("b"), []string{"b=vb", "ba=vba"}},
				{"Prefix()", kv.Prefix(""), all},
				{"Prefix(x)", kv.Prefix("x"), nil},
			} {
				if got := collect(tc.seq); !slices.Equal(got, tc.want) {
					t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
				}
			}
			// Breaking out of a range stops it.
			var first []string
			for k := range kv.All() {
				first = append(first, k)
				break
			}
			if !slices.Equal(first, []string{"a"}) {
				t.Errorf("first of All: %v", first)
			}

			st.flush(t)
			if n, err := kv.ApproximateNumEntries(); n != int64(len(all)) || err != nil {
				t.Errorf("ApproximateNumEntries = %d, %v; want %d", n, err, len(all))
			}
			if err := kv.Err(); err != nil {
				t.Errorf("Err = %v", err)
			}
		})
	}
}

func TestKeyValueStorePrefixOfFF(t *testing.T) {
	for _, l := range layouts[:3] {
		t.Run(l.name, func(t *testing.T) {
			db, _ := openMem(t)
			kv := state.NewKeyValueStore(l.open(t, db, "0_0", "kv").bytes, serde.Bytes, serde.String)
			for _, k := range [][]byte{{0xfe}, {0xff}, {0xff, 0x00}, {0xff, 0xff}, {0xff, 0xff, 0x01}} {
				if err := kv.Put(k, fmt.Sprint(k)); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{"[255 255]=[255 255]", "[255 255 1]=[255 255 1]"}
			if got := collect(kv.Prefix([]byte{0xff, 0xff})); !slices.Equal(got, want) {
				t.Errorf("Prefix(ff ff) = %v, want %v", got, want)
			}
		})
	}
}

// TestKeyValueStoreBytesAliasing checks that yielded serde.Bytes keys and
// values stay valid after the iteration moves on.
func TestKeyValueStoreBytesAliasing(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			db, _ := openMem(t)
			kv := state.NewKeyValueStore(l.open(t, db, "0_0", "kv").bytes, serde.Bytes, serde.Bytes)
			for i := range 50 {
				k := fmt.Appendf(nil, "k%02d", i)
				if err := kv.Put(k, k); err != nil {
					t.Fatal(err)
				}
			}
			var keys, values [][]byte
			for k, v := range kv.All() {
				keys, values = append(keys, k), append(values, v)
			}
			for i := range keys {
				if want := fmt.Sprintf("k%02d", i); string(keys[i]) != want || string(values[i]) != want {
					t.Fatalf("entry %d: %q=%q, want %s", i, keys[i], values[i], want)
				}
			}
		})
	}
}

func TestDecodeErrorIsSticky(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine.String(), func(t *testing.T) {
			db, _ := openMem(t)
			s := db.Task("0_0").Open("counts", engine)
			mustPut(t, s, "bad", "not an int64")
			mustPut(t, s, "good", "\x00\x00\x00\x00\x00\x00\x00\x07")
			kv := state.NewKeyValueStore(s, serde.String, serde.Int64)

			if v, found, err := kv.Get("good"); v != 7 || !found || err != nil {
				t.Fatalf("Get(good) = %d, %v, %v", v, found, err)
			}
			_, _, err := kv.Get("bad")
			var se *state.StoreError
			if !errors.As(err, &se) {
				t.Fatalf("Get(bad): %v, want a *state.StoreError", err)
			}
			if se.Store != "counts" || string(se.Key) != "bad" || se.Op != "decode value" || !errors.Is(err, serde.ErrSize) {
				t.Errorf("state.StoreError = %+v", se)
			}
			if kv.Err() != err {
				t.Errorf("Err() = %v, want the first error %v", kv.Err(), err)
			}

			// A later error does not replace the first.
			s2 := db.Task("0_1").Open("other", engine)
			mustPut(t, s2, "x", "bad")
			kv2 := state.NewKeyValueStore(s2, serde.String, serde.Int64)
			for range kv2.All() {
				t.Error("All yielded an undecodable entry")
			}
			first := kv2.Err()
			if !errors.As(first, &se) || string(se.Key) != "x" {
				t.Fatalf("Err after All: %v", first)
			}
			kv2.Get("x")
			if kv2.Err() != first {
				t.Errorf("Err changed to %v", kv2.Err())
			}
		})
	}
}

func TestStoreErrorAfterClose(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	kv := state.NewKeyValueStore(ts.Open("s", state.Persistent), serde.String, serde.String)
	ts.Close()
	err := kv.Put("k", "v")
	var se *state.StoreError
	if !errors.Is(err, state.ErrClosed) || !errors.As(err, &se) || se.Op != "put" || string(se.Key) != "k" {
		t.Errorf("Put after Close: %v", err)
	}
	for range kv.All() {
		t.Error("All yielded after Close")
	}
}

func TestSetFlushListener(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			db, _ := openMem(t)
			st := l.open(t, db, "0_0", "counts")
			kv := state.NewKeyValueStore(st.bytes, serde.String, serde.Int64)
			var got []state.Flushed[string, int64]
			cached := kv.(state.FlushListener[string, int64]).SetFlushListener(func(f state.Flushed[string, int64]) error {
				got = append(got, f)
				return nil
			})
			if want := l.cached && l.cacheBytes > 0; cached != want {
				t.Fatalf("SetFlushListener reported cached=%v, want %v", cached, want)
			}
			if !cached {
				return
			}
			for i := range 3 {
				if err := kv.Put("a", int64(i+1)); err != nil {
					t.Fatal(err)
				}
			}
			st.flush(t)
			if err := kv.Put("a", 10); err != nil {
				t.Fatal(err)
			}
			if _, _, err := kv.Delete("a"); err != nil {
				t.Fatal(err)
			}
			st.flush(t)
			want := []state.Flushed[string, int64]{
				{Key: "a", Value: 3, HasValue: true},
				{Key: "a", Old: 3, HasOld: true},
			}
			if !slices.Equal(got, want) {
				t.Errorf("flushed %+v, want %+v", got, want)
			}
		})
	}
}

// TestScanWhileWriting writes to the store from inside its own Scan: the
// scan sees the entries as of its start, and the writes land.
func TestScanWhileWriting(t *testing.T) {
	for _, l := range layouts {
		for _, reverse := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reverse=%v", l.name, reverse), func(t *testing.T) {
				db, _ := openMem(t)
				s := l.open(t, db, "0_0", "s").bytes
				for _, k := range []string{"a", "b", "c", "d"} {
					mustPut(t, s, k, "1")
				}
				var seen []string
				err := s.Scan(nil, nil, reverse, func(k, v []byte) bool {
					seen = append(seen, string(k)+"="+string(v))
					if err := s.Put(append([]byte("z"), k...), []byte("new")); err != nil {
						t.Fatal(err)
					}
					if err := s.Delete([]byte("c")); err != nil {
						t.Fatal(err)
					}
					return true
				})
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"a=1", "b=1", "c=1", "d=1"}
				if reverse {
					slices.Reverse(want)
				}
				check(t, "seen", seen, want)
				got := scanAll(t, s, nil, nil, false)
				check(t, "after", got, []string{"a=1", "b=1", "d=1", "za=new", "zb=new", "zc=new", "zd=new"})
			})
		}
	}
}
