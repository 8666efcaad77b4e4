package storage

import (
	"errors"
	"slices"
	"testing"

	"github.com/runnel-dev/runnel/state"
)

func TestLogged(t *testing.T) {
	db, _ := openMem(t)
	below := db.Task("0_0").Open("s", state.InMemory)
	var log []string
	fail := errors.New("log failed")
	var logErr error
	s := Logged(below, func(key, value []byte) error {
		// The write reached the store before it is logged.
		if v := mustGet(t, below, string(key)); string(v) != string(value) || (v == nil) != (value == nil) {
			t.Errorf("logging %s=%s while the store has %s", key, orDash(value), orDash(v))
		}
		log = append(log, string(key)+"="+orDash(value))
		return logErr
	})
	if s.Name() != "s" {
		t.Errorf("Name %q", s.Name())
	}
	mustPut(t, s, "a", "1")
	if err := s.Put([]byte("b"), nil); err != nil { // nil value: a delete
		t.Fatal(err)
	}
	mustDelete(t, s, "a")
	if !slices.Equal(log, []string{"a=1", "b=-", "a=-"}) {
		t.Errorf("log %v", log)
	}
	logErr = fail
	if err := s.Put([]byte("c"), []byte("3")); !errors.Is(err, fail) {
		t.Errorf("Put with a failing log: %v", err)
	}
	db.mu.Lock()
	ts := db.mu.tasks["0_0"]
	db.mu.Unlock()
	ts.Close()
	log = nil
	if err := s.Put([]byte("d"), []byte("4")); !errors.Is(err, state.ErrClosed) || len(log) != 0 {
		t.Errorf("Put on a closed store: %v, logged %v", err, log)
	}
}
