package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/state"
)

var (
	// ErrFailed is wrapped by the errors of every operation on a DB, and on
	// the stores of its tasks, after a write to Pebble failed. Pebble then
	// holds the failed write in memory although it is not durable, and
	// rejects further writes, so the DB must be closed and opened again;
	// reopening shows the last durably committed state.
	ErrFailed = errors.New("state: database failed")
	// ErrBadCheckpoint is wrapped by the error TaskState.Checkpoint returns
	// when a stored checkpoint cannot be decoded. The store's contents can
	// then not be trusted: wipe it and restore it in full.
	ErrBadCheckpoint = errors.New("state: malformed checkpoint")
)

// Pebble tuning. Stores see many small writes, committed in batches of up to
// a few MiB: memtables larger than Pebble's 4 MiB mean fewer flushes and
// less write amplification, and Bloom filters keep Gets of absent keys (new
// keys of aggregations) from reading every level. Pebble reserves its
// memtables (up to two of them, plus ones readers still hold) out of the
// block cache, so the cache must be several memtables large or it caches
// nothing.
const (
	memTableSize      = 32 << 20
	defaultCacheSize  = 128 << 20
	minCacheSize      = 4 * memTableSize
	bloomBitsPerKey   = 10
	lockFileName      = "LOCK" // Pebble's lock file, kept when wiping a corrupt DB
	keyspaceCheckpt   = 0x00
	keyspaceData      = 0x01
	checkpointEncSize = 8
)

// Options configure Open. The zero value is ready to use: every zero field
// means its default.
type Options struct {
	// FS is the file system the database lives on. Default: vfs.Default,
	// the operating system's. Tests pass vfs.NewMem().
	FS vfs.FS
	// Logger receives the DB's warnings (corruption recovery) and Pebble's
	// own messages (Pebble's informational messages at debug level).
	// Default: a logger that discards everything.
	Logger *slog.Logger
	// CacheSize is the memory in bytes Pebble may use for its memtables
	// (two of 32 MiB) and its block cache together. Default 128 MiB; values
	// below 128 MiB are raised to it. (Kafka Streams' RocksDB block cache
	// and write buffers, for all stores of the instance.)
	CacheSize int64
}

// EnsureDefaults fills the zero fields of o with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	o.CacheSize = max(o.CacheSize, minCacheSize)
}

// DB is the Pebble database holding the persistent stores of every task of
// one application instance. A DB is safe for concurrent use; the TaskStates
// it hands out are not, each belongs to its task's goroutine.
//
// Keys are laid out so that one task's data is one contiguous key range, and
// one store of one task is one contiguous range inside it:
//
//	data:        0x01 | uvarint(len(task)) task | uvarint(len(store)) store | user key
//	checkpoints: 0x00 | uvarint(len(task)) task | uvarint(len(store)) store
//
// A store's data and its checkpoint (the changelog offset it reflects) are
// always written in the same atomic Pebble batch, so after any crash the
// data and the checkpoint agree.
//
// A failed write fails the DB (see ErrFailed). Failures Pebble deems fatal
// in its background work (flushes, compactions) panic and crash the
// process, as Pebble's own logger would exit it.
type DB struct {
	pdb  *pebble.DB
	lock *pebble.Lock
	dir  string
	fs   vfs.FS
	log  *slog.Logger

	// failed is set (once) when a Pebble write fails; see ErrFailed.
	failed atomic.Pointer[error]

	mu struct {
		sync.Mutex
		closed bool
		tasks  map[string]*TaskState // the open TaskStates by task id
	}
}

// Open opens the database in dir, creating dir and the database when they
// do not exist. dir must be dedicated to the database: see below.
//
// Only one DB may have dir open at a time: when another instance, in this
// process or another, holds it, Open returns an error wrapping ErrLocked
// that names the directory.
//
// When Pebble finds the database corrupt, or a previous run found it
// corrupt while reading it (see ErrCorrupt), Open logs a warning saying
// why, deletes everything in dir, and opens an empty database: every
// store then has no checkpoint and is restored in full from its changelog.
//
// The caller must Close the DB.
func Open(dir string, opts Options) (*DB, error) {
	opts.EnsureDefaults()
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: create state directory %s: %w", dir, err)
	}
	lock, err := pebble.LockDirectory(dir, opts.FS)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			// Creating the lock file failed: an I/O problem, not contention.
			return nil, fmt.Errorf("state: lock state directory %s: %w", dir, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", state.ErrLocked, dir, err)
	}
	db := &DB{lock: lock, dir: dir, fs: opts.FS, log: opts.Logger}
	db.mu.tasks = make(map[string]*TaskState)

	if markedCorrupt(opts.FS, dir) {
		err = errMarkedCorrupt
	} else {
		db.pdb, err = pebble.Open(dir, db.pebbleOptions(opts))
	}
	if errors.Is(err, errMarkedCorrupt) || errors.Is(err, fs.ErrNotExist) || (err != nil && pebble.IsCorruptionError(err)) {
		db.log.Warn("state: the state database is corrupt; deleting it, stores will be restored in full from their changelogs",
			"dir", dir, "error", err)
		if err = removeContents(opts.FS, dir); err == nil {
			db.pdb, err = pebble.Open(dir, db.pebbleOptions(opts))
		}
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("state: open state database %s: %w", dir, err)
	}
	return db, nil
}

// pebbleOptions returns fresh Pebble options (Pebble's Open modifies them).
func (db *DB) pebbleOptions(opts Options) *pebble.Options {
	po := &pebble.Options{
		FS:                 opts.FS,
		Lock:               db.lock,
		Logger:             pebbleLogger{opts.Logger.With("component", "pebble", "dir", db.dir)},
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       memTableSize,
		CacheSize:          opts.CacheSize,
		EventListener: &pebble.EventListener{
			DataCorruption: func(info pebble.DataCorruptionInfo) { db.corrupted(fmt.Errorf("%s: %w", info.Path, info.Details)) },
		},
	}
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	return po
}

// removeContents deletes everything in dir except Pebble's lock file, which
// the caller holds.
func removeContents(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, name := range names {
		if name == lockFileName {
			continue
		}
		if err := fs.RemoveAll(fs.PathJoin(dir, name)); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return nil
}

// Close closes the database. Every TaskState must be closed first: while
// one is open, Close returns an error naming the open tasks and leaves the
// DB open. Closing a closed DB returns an error wrapping ErrClosed.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return fmt.Errorf("state: close state database %s: %w", db.dir, state.ErrClosed)
	}
	if len(db.mu.tasks) > 0 {
		ids := make([]string, 0, len(db.mu.tasks))
		for id := range db.mu.tasks {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return fmt.Errorf("state: close state database %s: tasks %s still open", db.dir, strings.Join(ids, ", "))
	}
	db.mu.closed = true
	err := db.pdb.Close()
	if lerr := db.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("state: close state database %s: %w", db.dir, err)
	}
	return nil
}

// Err returns the error that failed the DB (wrapping ErrFailed), or nil.
func (db *DB) Err() error {
	if p := db.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail marks the DB failed by cause, unless it failed before, and returns
// the DB's failure.
func (db *DB) fail(cause error) error {
	err := fmt.Errorf("%w: %s: %w", ErrFailed, db.dir, cause)
	if db.failed.CompareAndSwap(nil, &err) {
		db.log.Error("state: a write to the state database failed; it must be reopened", "dir", db.dir, "error", cause)
	}
	return db.Err()
}

// Task returns the state of task id (such as "0_1"): its stores, pending
// writes and checkpoints. At most one TaskState per id may be open at a
// time; the caller must Close it.
//
// Task panics when the DB is closed or id is already open: both are bugs of
// the caller.
func (db *DB) Task(id string) *TaskState {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		panic(fmt.Sprintf("state: Task(%q) on a closed DB", id))
	}
	if _, ok := db.mu.tasks[id]; ok {
		panic(fmt.Sprintf("state: task %s is already open", id))
	}
	ts := newTaskState(db, id)
	db.mu.tasks[id] = ts
	return ts
}

// closeTask forgets the open TaskState of id.
func (db *DB) closeTask(id string) {
	db.mu.Lock()
	delete(db.mu.tasks, id)
	db.mu.Unlock()
}

// apply commits b. A failed write fails the DB (see ErrFailed).
//
// Pebble reports a failed WAL write or sync as a fatal error through
// Logger.Fatalf, which pebbleLogger turns into a panic of type pebbleFatal
// in the committing goroutine: apply recovers it as an error. Pebble holds
// no lock at that point (the commit pipeline has returned).
func (db *DB) apply(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	if err := db.Err(); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			err = db.fail(errors.New(string(f)))
		}
	}()
	if err := b.Commit(opts); err != nil {
		return db.fail(err)
	}
	return nil
}

// pebbleFatal is the panic value of pebbleLogger.Fatalf.
type pebbleFatal string

// pebbleLogger adapts slog to Pebble's Logger: informational messages go to
// debug level, errors to error level, and fatal errors are logged and then
// panic with a pebbleFatal (Pebble requires Fatalf not to return). In the
// goroutine of a commit, DB.apply recovers that panic; in Pebble's
// background goroutines it crashes the process, as Pebble's own logger would
// by exiting.
type pebbleLogger struct{ l *slog.Logger }

// Infof logs at debug level.
func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

// Errorf logs at error level.
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf logs at error level and panics with a pebbleFatal.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic(pebbleFatal(msg))
}

// taskPrefix returns ks | uvarint(len(id)) | id.
func taskPrefix(ks byte, id string) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(id))
	b = append(b, ks)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

// storePrefix returns taskPrefix | uvarint(len(name)) | name.
func storePrefix(ks byte, id, name string) []byte {
	b := taskPrefix(ks, id)
	b = binary.AppendUvarint(b, uint64(len(name)))
	return append(b, name...)
}

// encodeCheckpoint encodes a changelog offset as 8 big-endian bytes.
func encodeCheckpoint(offset int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, checkpointEncSize), uint64(offset))
}

// decodeCheckpoint decodes encodeCheckpoint's output.
func decodeCheckpoint(b []byte) (int64, error) {
	if len(b) != checkpointEncSize {
		return 0, fmt.Errorf("%w: %d bytes, want %d", ErrBadCheckpoint, len(b), checkpointEncSize)
	}
	off := int64(binary.BigEndian.Uint64(b))
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrBadCheckpoint, off)
	}
	return off, nil
}
