package stream_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
)

// damageSST overwrites 64 bytes in the middle of a table file: a data
// block, whose checksum then fails.
func damageSST(t *testing.T, path string) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 64)), fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// damagedStateDir creates the topics and runs a word count over 3000 distinct words twice with
// the state directory dir (the second start flushes the database's log to
// a table file), then damages every table file with damage. It returns
// the counts so far. Exactly-once keeps the counts exact across the
// failures to come.
func (e *e2eEnv) damagedStateDir(appID, dir string, damage func(t *testing.T, path string)) map[string]int64 {
	e.t.Helper()
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	truth := map[string]int64{}
	e.e2eCorpus("lines", 0, damagedVocab, damagedVocab, truth)
	e.runWordCount(appID, dir, exactlyOnce)
	e.runWordCount(appID, dir, exactlyOnce)
	ssts, err := filepath.Glob(filepath.Join(dir, appID, "*.sst"))
	if err != nil || len(ssts) == 0 {
		e.t.Fatalf("no table file in the state directory (%v)", err)
	}
	for _, sst := range ssts {
		damage(e.t, sst)
	}
	return truth
}

const damagedVocab = 3000

func exactlyOnce(cfg *stream.Config) { cfg.Guarantee = stream.ExactlyOnce }

// TestAppStateDamagedSST: a table file of the state database damaged on
// disk fails the task when a read finds it, with an error naming the
// store, and is never routed to the processing error handler
// (LogAndContinue here must not skip the records). The next start wipes
// the database and restores it from the changelog, with exact counts.
func TestAppStateDamagedSST(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	const appID = "wc-sst-damaged"
	dir := t.TempDir()
	truth := e.damagedStateDir(appID, dir, damageSST)

	e.e2eCorpus("lines", damagedVocab, damagedVocab, damagedVocab, truth)
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, logs := e.config(appID)
	cfg.StateDir = dir
	exactlyOnce(&cfg)
	cfg.ProcessingErrorHandler = stream.LogAndContinue
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = e.start(app).wait(t, time.Minute)
	// A read of the store while processing finds the damage (a
	// *state.StoreError), or the task's restoration does when a background
	// compaction failed the database first: either way the error names
	// the store and the corruption.
	var se *state.StoreError
	namesStore := errors.As(err, &se) && se.Store == "counts" || err != nil && strings.Contains(err.Error(), `restoring store "counts"`)
	if !namesStore || !strings.Contains(err.Error(), "state: state database corrupt") {
		t.Fatalf("Run = %v, want an error naming store counts and the corruption", err)
	}
	if strings.Contains(logs.String(), "skipping record") {
		t.Errorf("the processing error handler skipped records over a damaged store:\n%s", logs.tail(40))
	}

	rc := e.runWordCount(appID, dir, exactlyOnce)
	if n, _, _ := rc.get(); n == 0 {
		t.Errorf("the start after the failure restored nothing from the changelog")
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Errorf("counts after the restore differ from the truth (%d words vs %d)", len(got), len(truth))
	}
}

// TestAppStateMissingSST: a table file missing from the state database
// makes the next start wipe it and restore it from the changelog, with
// exact counts.
func TestAppStateMissingSST(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	const appID = "wc-sst-missing"
	dir := t.TempDir()
	truth := e.damagedStateDir(appID, dir, func(t *testing.T, path string) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	})
	e.e2eCorpus("lines", damagedVocab, 100, damagedVocab, truth)
	rc := e.runWordCount(appID, dir, exactlyOnce)
	if n, _, _ := rc.get(); n == 0 {
		t.Errorf("the start over a missing table file restored nothing from the changelog")
	}
	if got := e.e2eFinalCounts("counts-out"); !maps.Equal(got, truth) {
		t.Errorf("counts after the restore differ from the truth (%d words vs %d)", len(got), len(truth))
	}
}
