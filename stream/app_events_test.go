package stream_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/event"
	"github.com/runnel-dev/runnel/topology"
)

// e2eEvents records the events of an App.
type e2eEvents struct {
	mu         sync.Mutex
	assigned   []event.TasksInfo
	revoked    []event.TasksInfo
	rebalances []string // "start <reason>" or "end"
	commits    []event.CommitInfo
	aborts     []event.AbortInfo
	starts     []event.RestoreInfo
	progress   int64 // records in RestoreProgress events
	ends       []event.RestoreInfo
	skipped    []event.SkipInfo
	states     []string
}

// listener returns a listener recording into r.
func (r *e2eEvents) listener() *event.Listener {
	return &event.Listener{
		TasksAssigned:    record(r, &r.assigned),
		TasksRevoked:     record(r, &r.revoked),
		RebalanceStart:   func(info event.RebalanceInfo) { record(r, &r.rebalances)("start " + info.Reason) },
		RebalanceEnd:     func(event.RebalanceInfo) { record(r, &r.rebalances)("end") },
		Commit:           record(r, &r.commits),
		TransactionAbort: record(r, &r.aborts),
		RestoreStart:     record(r, &r.starts),
		RestoreProgress: func(info event.RestoreInfo) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.progress += info.Records
		},
		RestoreEnd:    record(r, &r.ends),
		RecordSkipped: record(r, &r.skipped),
		StateChange: func(info event.StateChangeInfo) {
			record(r, &r.states)(info.Old + "->" + info.New)
		},
	}
}

// record returns a function appending to *list under r.mu.
func record[T any](r *e2eEvents, list *[]T) func(T) {
	return func(info T) {
		r.mu.Lock()
		defer r.mu.Unlock()
		*list = append(*list, info)
	}
}

// snapshot returns a copy of *list taken under r.mu.
func snapshot[T any](r *e2eEvents, list *[]T) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(*list)
}

// TestAppEvents: a word count's events on the embedded broker: its four
// tasks assigned by id and closed at shutdown, the commits counting every
// input and repartition record processed, the state changes; then an
// instance on an empty state directory reports the full restoration of
// each changelog partition with the changelog's record count, while the
// RestoreListener fed from the same events sees the same.
func TestAppEvents(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	const appID = "wc-events"
	truth := map[string]int64{}
	e.e2eCorpus("lines", 0, 200, 40, truth)

	first := &e2eEvents{}
	e.runWordCount(appID, t.TempDir(), func(cfg *stream.Config) { cfg.EventListener = first.listener() })
	tasks := []topology.TaskID{{Subtopology: 0, Partition: 0}, {Subtopology: 0, Partition: 1}, {Subtopology: 1, Partition: 0}, {Subtopology: 1, Partition: 1}}
	assigned := snapshot(first, &first.assigned)
	if len(assigned) == 0 || !slices.Equal(assigned[len(assigned)-1].Tasks, tasks) {
		t.Errorf("TasksAssigned events %v, want the last to name %v", assigned, tasks)
	}
	revoked := snapshot(first, &first.revoked)
	if len(revoked) == 0 || !slices.Equal(revoked[len(revoked)-1].Tasks, tasks) || revoked[len(revoked)-1].Lost {
		t.Errorf("TasksRevoked events %v, want the last (shutdown) to close %v, not lost", revoked, tasks)
	}
	var records int64
	for _, c := range snapshot(first, &first.commits) {
		records += c.Records
		if c.Partitions == 0 || c.Duration <= 0 {
			t.Errorf("commit event %+v: no partitions or no duration", c)
		}
	}
	// One instance that never lost a task processes every record once.
	repartitioned := e.e2eEndSum(appID + "-counts-repartition")
	if want := 200 + repartitioned; records != want {
		t.Errorf("commit events count %d records, want the 200 lines and %d repartition records, %d", records, repartitioned, want)
	}
	if got := snapshot(first, &first.rebalances); len(got) < 2 || got[0] != "start join" || !slices.Contains(got, "end") {
		t.Errorf("rebalance events %q, want a join start and an end", got)
	}
	wantStates := []string{"CREATED->REBALANCING", "REBALANCING->RUNNING", "RUNNING->PENDING_SHUTDOWN", "PENDING_SHUTDOWN->NOT_RUNNING"}
	if got := snapshot(first, &first.states); !slices.Equal(got, wantStates) {
		t.Errorf("state change events %q, want %q", got, wantStates)
	}
	if n := len(snapshot(first, &first.starts)); n != 0 {
		t.Errorf("%d RestoreStart events from empty changelogs", n)
	}

	// New input, so the second instance has something to commit once it
	// restored.
	changelog := appID + "-counts-changelog"
	logged := e.e2eEndSum(changelog)
	e.e2eCorpus("lines", 200, 50, 40, truth)
	second := &e2eEvents{}
	rc := e.runWordCount(appID, t.TempDir(), func(cfg *stream.Config) { cfg.EventListener = second.listener() })
	starts, ends := snapshot(second, &second.starts), snapshot(second, &second.ends)
	if len(starts) != 2 || len(ends) != 2 {
		t.Fatalf("%d RestoreStart and %d RestoreEnd events, want one of each per changelog partition (2)", len(starts), len(ends))
	}
	var restored int64
	for _, s := range starts {
		if s.Topic != changelog || s.Store != "counts" || s.Task.Subtopology != 1 || s.Task.Partition != s.Partition ||
			s.StartOffset != 0 || s.EndOffset <= 0 || s.FullReason != "it has no local checkpoint" {
			t.Errorf("RestoreStart %+v, want a full restore of store counts from %s by its task", s, changelog)
		}
	}
	for _, end := range ends {
		restored += end.Records
		if end.Offset != end.EndOffset || end.Records != end.EndOffset-end.StartOffset || end.Duration <= 0 {
			t.Errorf("RestoreEnd %+v, want every record up to the end offset", end)
		}
	}
	if restored != logged || second.progress != logged {
		t.Errorf("restored %d records (%d in progress events), want the changelog's %d", restored, second.progress, logged)
	}
	if n, s, en := rc.get(); n != logged || s != 2 || en != 2 {
		t.Errorf("RestoreListener saw %d records, %d starts, %d ends; want %d, 2, 2", n, s, en, logged)
	}
}

// TestAppEventsTransactionAbort: under exactly-once, a second instance
// joining makes the first one's open transaction abort (the group
// rebalances under it), reported with its reason.
func TestAppEventsTransactionAbort(t *testing.T) {
	e := newE2E(t, 2*time.Minute)
	e.topic("lines", 2)
	e.topic("counts-out", 2)
	const appID = "wc-events-eos"
	newApp := func(ev *e2eEvents) *e2eRun {
		b := stream.NewBuilder()
		e2eWordCount(b, "lines", "counts-out")
		cfg, _ := e.config(appID)
		cfg.Guarantee = stream.ExactlyOnce
		cfg.InstanceID = fmt.Sprintf("i%p", ev)
		cfg.EventListener = ev.listener()
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return e.start(app)
	}
	truth := map[string]int64{}
	e.e2eCorpus("lines", 0, 100, 20, truth)
	a := &e2eEvents{}
	runA := newApp(a)
	e.waitFor("a committed transaction", func() (bool, error) { return len(snapshot(a, &a.commits)) > 0, nil }, runA)
	if n := len(snapshot(a, &a.aborts)); n != 0 {
		t.Fatalf("%d transactions aborted before any rebalance", n)
	}
	runB := newApp(&e2eEvents{})
	e.waitFor("the first instance's transaction to abort", func() (bool, error) { return len(snapshot(a, &a.aborts)) > 0, nil }, runA, runB)
	for _, ab := range snapshot(a, &a.aborts) {
		if ab.Reason != event.AbortRebalance && ab.Reason != event.AbortKafka || ab.Err != nil {
			t.Errorf("abort event %+v, want reason %q or %q and no produce error", ab, event.AbortRebalance, event.AbortKafka)
		}
	}
	for _, r := range []*e2eRun{runA, runB} {
		if err := r.stop(t); err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}
