package state

import (
	"fmt"
	"testing"

	"github.com/runnel-dev/runnel/serde"
)

func TestScratchMetrics(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("0_0")
	c := NewCache(10<<20, nil)
	kv := NewKeyValueStore(c.Wrap(ts.Open("counts", Persistent)), serde.String, serde.Int64)
	nk := 1_000_000
	for i := 0; i < 2_000_000; i++ {
		k := fmt.Sprintf("word-%07d", (i*7919)%nk)
		n, _, _ := kv.Get(k)
		kv.Put(k, n+1)
		if i%10000 == 9999 {
			c.Flush()
			ts.Commit(nil)
		}
	}
	m := db.pdb.Metrics()
	t.Logf("%s", m.String())
}
