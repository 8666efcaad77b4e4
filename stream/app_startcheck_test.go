package stream_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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

// refusedRecordApp runs in -> out, where out refuses records over 300
// bytes, on the input small (offset 0) then, once its output is in out
// (a produce request fails as a whole), big (a 1000-byte value, offset 1).
func refusedRecordApp(t *testing.T, appID string, handler topology.ErrorHandler) (*e2eEnv, *e2eRun, *e2eLog) {
	e := newE2E(t, time.Minute)
	e.topic("in", 1)
	if err := e.c.CreateTopic(e.ctx, "out", 1, map[string]*string{"max.message.bytes": ptr("300")}); err != nil {
		t.Fatal(err)
	}
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.Bytes).To("out", serde.String, serde.Bytes)
	cfg, logs := e.config(appID)
	cfg.ProductionErrorHandler = handler
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.produce(&kgo.Record{Topic: "in", Key: []byte("small"), Value: []byte("ok")})
	e.waitForOutput("out", 1, run)
	blob := make([]byte, 1000)
	for i := range blob {
		blob[i] = byte(i * 7919 % 251)
	}
	e.produce(&kgo.Record{Topic: "in", Key: []byte("big-key"), Value: blob})
	return e, run, logs
}

// waitForOutput waits until topic holds n records.
func (e *e2eEnv) waitForOutput(topic string, n int, apps ...*e2eRun) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d records in %s", n, topic), func() (bool, error) {
		recs, err := e.c.ReadAll(e.ctx, topic)
		return len(recs) >= n, err
	}, apps...)
}

// refusedRecordText is how the errors of refusedRecordApp name the input
// record whose output Kafka refused.
const refusedRecordText = `stream: producing to out the output of input record in-0@1 (key "big-key"): MESSAGE_TOO_LARGE`

// TestAppRefusedRecordNamesInput: a record Kafka refuses fails Run with an
// error naming the input record (topic, partition, offset, key) whose
// processing produced it.
func TestAppRefusedRecordNamesInput(t *testing.T) {
	_, run, _ := refusedRecordApp(t, "refused-fail", stream.LogAndFail)
	err := run.wait(t, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), refusedRecordText) {
		t.Fatalf("Run = %v, want an error containing %q", err, refusedRecordText)
	}
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("Run = %v, want it to match kerr.MessageTooLarge", err)
	}
}

// TestAppRefusedRecordSkippedNamesInput: with LogAndContinue the refused
// record is dropped, the log naming its input record, and the rest flows.
func TestAppRefusedRecordSkippedNamesInput(t *testing.T) {
	e, run, logs := refusedRecordApp(t, "refused-continue", stream.LogAndContinue)
	committed := func(n int64) {
		e.waitFor(fmt.Sprintf("%d input records committed", n), func() (bool, error) {
			offs, err := e.c.CommittedOffsets(e.ctx, "refused-continue", "in")
			return err == nil && offs[0] == n, err
		}, run)
	}
	committed(2) // the big record was dropped: the next small one goes alone
	e.produce(&kgo.Record{Topic: "in", Key: []byte("small"), Value: []byte("ok")})
	committed(3)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if got := len(e.readAll("out")); got != 2 {
		t.Errorf("out has %d records, want the 2 small ones", got)
	}
	if l := logs.String(); !strings.Contains(l, "dropping record that failed to produce") || !strings.Contains(l, strings.ReplaceAll(refusedRecordText, `"`, `\"`)) {
		t.Errorf("no log of the dropped record naming its input %q:\n%s", refusedRecordText, l)
	}
}
