package stream_test

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/stream"
)

// TestAppInternalTopicPartitionMismatch: an existing changelog or
// repartition topic whose partition count is not the one the topology
// needs fails Run at start, naming the topic and both counts.
func TestAppInternalTopicPartitionMismatch(t *testing.T) {
	for _, suffix := range []string{"-counts-changelog", "-counts-repartition"} {
		t.Run(suffix[1:], func(t *testing.T) {
			e := newE2E(t, time.Minute)
			e.topic("lines", 2)
			e.topic("counts-out", 2)
			appID := "mismatch" + suffix
			topic := appID + suffix
			e.topic(topic, 3)
			b := stream.NewBuilder()
			e2eWordCount(b, "lines", "counts-out")
			cfg, _ := e.config(appID)
			app, err := stream.NewApp(b, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = app.Run(e.ctx)
			if !errors.Is(err, stream.ErrPartitionMismatch) {
				t.Fatalf("Run = %v, want an error matching stream.ErrPartitionMismatch", err)
			}
			want := `stream: internal topic has the wrong number of partitions: "` + topic + `" has 3 partitions, the topology needs 2`
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Run = %q, want it to start with %q", err, want)
			}
		})
	}
}

// TestAppInternalTopicExisting: an existing internal topic with the right
// partition count is used as it is, and the log does not claim it was
// created.
func TestAppInternalTopicExisting(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	const appID = "existing"
	changelog := appID + "-counts-changelog"
	e.topic(changelog, 2)
	truth := map[string]int64{}
	e.e2eCorpus("lines", 0, 50, 10, truth)
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, logs := e.config(appID)
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Errorf("counts:\n got %v\nwant %v", got, truth)
	}
	if l := logs.String(); strings.Contains(l, `"created internal topic" app=`+appID+` topic=`+changelog) ||
		!strings.Contains(l, `msg="created internal topic" app=`+appID+` topic=`+appID+`-counts-repartition`) {
		t.Errorf("logs should report creating the repartition topic only:\n%s", l)
	}
}
