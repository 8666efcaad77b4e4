package storage

import "github.com/runnel-dev/runnel/state"

// Logged returns s with every change written to a changelog: Put and Delete
// write through to s, then call log with the key and the value (nil for a
// Delete: a tombstone). An error of either is returned; when s fails, log is
// not called. Reads go to s unchanged.
//
// log is called on the store's goroutine and must not keep key or value
// after it returns: a log that hands them to a producer copies them. Like
// s, the returned store is not safe for concurrent use.
func Logged(s state.BytesStore, log func(key, value []byte) error) state.BytesStore {
	return &loggedStore{BytesStore: s, log: log}
}

// loggedStore is the store Logged returns.
type loggedStore struct {
	state.BytesStore
	log func(key, value []byte) error
}

var _ state.BytesStore = (*loggedStore)(nil)

// Put writes key=value to the store below, then logs it.
func (s *loggedStore) Put(key, value []byte) error {
	if value == nil {
		return s.Delete(key)
	}
	if err := s.BytesStore.Put(key, value); err != nil {
		return err
	}
	return s.log(key, value)
}

// Delete deletes key from the store below, then logs a tombstone.
func (s *loggedStore) Delete(key []byte) error {
	if err := s.BytesStore.Delete(key); err != nil {
		return err
	}
	return s.log(key, nil)
}
