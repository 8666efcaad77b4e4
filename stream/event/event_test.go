package event_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/stream/event"
)

// TestEnsureDefaults: every nil function becomes a no-op, and set ones are
// kept.
func TestEnsureDefaults(t *testing.T) {
	called := false
	l := event.Listener{Commit: func(event.CommitInfo) { called = true }}
	l.EnsureDefaults()
	v := reflect.ValueOf(l)
	for i := range v.NumField() {
		if v.Field(i).IsNil() {
			t.Errorf("%s is nil after EnsureDefaults", v.Type().Field(i).Name)
		}
	}
	l.TasksAssigned(event.TasksInfo{}) // a no-op, not a nil call
	l.Commit(event.CommitInfo{})
	if !called {
		t.Error("EnsureDefaults replaced a set function")
	}
}

// TestTee: every event reaches both listeners, a's first, and nil
// functions on either side are skipped.
func TestTee(t *testing.T) {
	var calls []string
	a := event.Listener{
		Commit:        func(info event.CommitInfo) { calls = append(calls, "a commit", string(rune('0'+info.Records))) },
		RecordSkipped: func(info event.SkipInfo) { calls = append(calls, "a skip "+info.Reason) },
	}
	b := event.Listener{
		Commit:      func(event.CommitInfo) { calls = append(calls, "b commit") },
		StateChange: func(info event.StateChangeInfo) { calls = append(calls, "b "+info.Old+"->"+info.New) },
	}
	l := event.Tee(a, b)
	l.Commit(event.CommitInfo{Records: 7})
	l.RecordSkipped(event.SkipInfo{Reason: "null_key"})
	l.StateChange(event.StateChangeInfo{Old: "REBALANCING", New: "RUNNING"})
	l.RestoreEnd(event.RestoreInfo{}) // set on neither side
	want := []string{"a commit", "7", "b commit", "a skip null_key", "b REBALANCING->RUNNING"}
	if !slices.Equal(calls, want) {
		t.Errorf("calls = %q, want %q", calls, want)
	}
	v := reflect.ValueOf(l)
	for i := range v.NumField() {
		if v.Field(i).IsNil() {
			t.Errorf("Tee left %s nil", v.Type().Field(i).Name)
		}
	}
}
