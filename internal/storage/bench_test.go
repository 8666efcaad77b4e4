package storage

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
)

// BenchmarkCount measures a count aggregation's store access: a typed Int64
// Get and Put of one key per op, through the record cache, flushing and
// committing every 10,000 ops.
func BenchmarkCount(b *testing.B) {
	for _, bc := range []struct {
		name       string
		engine     state.Engine
		cacheBytes int64
		keys       int
	}{
		{"pebble/cache/10k-keys", state.Persistent, 10 << 20, 10_000},
		{"pebble/cache/1M-keys", state.Persistent, 10 << 20, 1_000_000},
		{"pebble/no-cache/10k-keys", state.Persistent, 0, 10_000},
		{"memory/cache/10k-keys", state.InMemory, 10 << 20, 10_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db, _ := openMem(b)
			ts := db.Task("0_0")
			c := NewCache(bc.cacheBytes, nil)
			kv := state.NewKeyValueStore(c.Wrap(ts.Open("counts", bc.engine)), serde.String, serde.Int64)
			keys := make([]string, bc.keys)
			for i := range keys {
				keys[i] = fmt.Sprintf("word-%07d", (i*7919)%bc.keys)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := keys[i%len(keys)]
				n, _, err := kv.Get(k)
				if err != nil {
					b.Fatal(err)
				}
				if err := kv.Put(k, n+1); err != nil {
					b.Fatal(err)
				}
				if i++; i%10_000 == 0 {
					if err := c.Flush(); err != nil {
						b.Fatal(err)
					}
					if err := ts.Commit(map[string]int64{"counts": int64(i)}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkRestore measures restoring 1M small records (8-byte keys and
// values) in batches of 1,000, as a changelog fetch delivers them.
func BenchmarkRestore(b *testing.B) {
	const records, batch = 1_000_000, 1_000
	writes := make([]Write, records)
	for i := range writes {
		k := binary.BigEndian.AppendUint64(nil, uint64(i))
		writes[i] = Write{Key: k, Value: k}
	}
	for _, bc := range []struct {
		name string
		fs   func(b *testing.B) (vfs.FS, string)
	}{
		{"mem", func(*testing.B) (vfs.FS, string) { return vfs.NewMem(), "db" }},
		{"disk", func(b *testing.B) (vfs.FS, string) { return vfs.Default, b.TempDir() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fs, dir := bc.fs(b)
			db := openOn(b, fs, dir)
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				ts := db.Task(fmt.Sprintf("0_%d", n)) // a fresh store each time
				ts.Open("s", state.Persistent)
				for i := 0; i < records; i += batch {
					if err := ts.Restore("s", writes[i:i+batch], int64(i+batch)); err != nil {
						b.Fatal(err)
					}
				}
				ts.Close()
			}
			b.ReportMetric(float64(records*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
