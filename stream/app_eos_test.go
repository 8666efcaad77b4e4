package stream_test

import (
	"maps"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/stream"
)

// TestAppEOSWordCount: under exactly-once the word count's committed
// output is exact and each word's counts increase by one at a time.
func TestAppEOSWordCount(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 3)
	e.topic("counts-out", 3)
	const appID = "wc-eos"
	truth := map[string]int64{}
	e.e2eCorpus("lines", 0, 300, 50, truth)
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, _ := e.config(appID)
	cfg.Guarantee = stream.ExactlyOnce
	cfg.CacheMaxBytes = -1
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
	e.e2eCorpus("lines", 300, 100, 50, truth)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Fatalf("counts:\n got %v\nwant %v", got, truth)
	}
}
