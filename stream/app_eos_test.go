package stream_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAppEOSWordCount: under exactly-once the word count's committed
// output is exact, and a clean restart on the same state dir restores
// nothing and stays exact.
func TestAppEOSWordCount(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 3)
	e.topic("counts-out", 3)
	const appID = "wc-eos"
	eos := func(c *stream.Config) { c.Guarantee = stream.ExactlyOnce }
	truth := map[string]int64{}
	dir := t.TempDir()
	for run, lines := range []int{300, 100} {
		e.e2eCorpus("lines", run*300, lines, 50, truth)
		rc := e.runWordCount(appID, dir, eos)
		if n, _, _ := rc.get(); n != 0 {
			t.Errorf("run %d restored %d records, want 0", run, n)
		}
		if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
			t.Fatalf("counts after run %d:\n got %v\nwant %v", run, got, truth)
		}
	}
}

// TestAppEOSInstanceID: under exactly-once the default instance id is
// generated once and kept next to the state directory, so a restart uses
// the same transactional id; a second instance on the same directory
// fails at start with state.ErrLocked, naming the directory, instead of
// fencing the first one's transactions.
func TestAppEOSInstanceID(t *testing.T) {
	e := newE2E(t, time.Minute)
	e.topic("in", 1)
	e.topic("out", 1)
	dir := t.TempDir()
	newApp := func() (*stream.App, *e2eLog) {
		b := stream.NewBuilder()
		stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
		cfg, logs := e.config("eos-id")
		cfg.Guarantee = stream.ExactlyOnce
		cfg.StateDir = dir
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return app, logs
	}
	idFile := filepath.Join(dir, "eos-id.instance-id")
	first, logs := newApp()
	run := e.start(first)
	e.waitFor("the instance id file", func() (bool, error) {
		_, err := os.Stat(idFile)
		return err == nil, nil
	}, run)
	raw, err := os.ReadFile(idFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(raw))
	e.produce(&kgo.Record{Topic: "in", Value: []byte("x")})
	e.waitFor("the record to be copied", func() (bool, error) { return len(e.readAll("out")) == 1, nil }, run)
	if !strings.Contains(logs.String(), "transactional_id=eos-id-"+id) {
		t.Errorf("the logs do not name the transactional id eos-id-%s", id)
	}

	second, _ := newApp()
	err = second.Run(e.ctx)
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Errorf("second instance on the same state dir: Run = %v, want state.ErrLocked naming %s", err, dir)
	}
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	again, logs := newApp()
	run = e.start(again)
	e.produce(&kgo.Record{Topic: "in", Value: []byte("y")})
	e.waitFor("the second record to be copied", func() (bool, error) { return len(e.readAll("out")) == 2, nil }, run)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(logs.String(), "transactional_id=eos-id-"+id) {
		t.Errorf("the restarted instance does not use the transactional id eos-id-%s", id)
	}
}
