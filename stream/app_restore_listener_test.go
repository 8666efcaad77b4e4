package stream_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// suspendRecorder is a state.RestoreListener that also implements the
// optional state.RestoreSuspendedListener; it stops the application at the
// first restored batch.
type suspendRecorder struct {
	stop context.CancelFunc

	mu                 sync.Mutex
	batches, ends      int
	restored           int64
	suspended          int
	suspendedTotal     int64
	suspendedStore     string
	suspendedPartition int32
}

func (r *suspendRecorder) OnRestoreStart(string, int32, string, int64, int64) {}

func (r *suspendRecorder) OnBatchRestored(_ string, _ int32, _ string, _, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches++
	r.restored += n
	r.stop()
}

func (r *suspendRecorder) OnRestoreEnd(string, int32, string, int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ends++
}

func (r *suspendRecorder) OnRestoreSuspended(_ string, p int32, store string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suspended++
	r.suspendedTotal, r.suspendedStore, r.suspendedPartition = total, store, p
}

// TestRestoreSuspendedListener: a restore listener that implements the
// optional RestoreSuspendedListener hears OnRestoreSuspended, not
// OnRestoreEnd, when the application stops in the middle of a
// restoration, with the records restored until then.
func TestRestoreSuspendedListener(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	const appID = "restore-suspended"
	e.topic("users", 1)
	e.topic(appID+"-users-store-changelog", 1)
	// More records than one restore batch (10,000), so that the restore
	// is still reading when the first batch stops the application.
	const n = 25_000
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: appID + "-users-store-changelog", Key: fmt.Appendf(nil, "u%05d", i), Value: []byte("v")}
	}
	e.produce(recs...)

	b := stream.NewBuilder()
	stream.Table(b, "users", serde.String, serde.String, stream.Materialized("users-store")).
		ToStream().ForEach(func(string, string) {})
	cfg, _ := e.config(appID)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	rec := &suspendRecorder{stop: cancel}
	cfg.RestoreListener = rec
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil after the listener stopped it", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.batches != 1 || rec.ends != 0 {
		t.Fatalf("restore saw %d batches and %d ends, want 1 batch and no end", rec.batches, rec.ends)
	}
	if rec.suspended != 1 || rec.suspendedTotal != rec.restored || rec.suspendedStore != "users-store" || rec.suspendedPartition != 0 {
		t.Fatalf("OnRestoreSuspended called %d times with total %d for store %q partition %d; want once with %d for users-store partition 0",
			rec.suspended, rec.suspendedTotal, rec.suspendedStore, rec.suspendedPartition, rec.restored)
	}
	if rec.restored <= 0 || rec.restored >= n {
		t.Fatalf("restored %d records before stopping, want some of the %d", rec.restored, n)
	}
}
