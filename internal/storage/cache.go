package storage

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/runnel-dev/runnel/state"
)

// CacheEntryOverhead is the number of bytes a Cache counts for each entry on
// top of the lengths of its key and value: roughly the entry's bookkeeping
// (the entry struct, its map slot and list links).
const CacheEntryOverhead = 128

// freeEntries bounds the list of entries a Cache keeps for reuse.
const freeEntries = 256

// Cache is the record cache of one task (Kafka Streams' ThreadCache and
// NamedCache, simplified): it keeps recent entries of the stores it wraps in
// memory, and collapses consecutive writes of a key into one write to the
// store below, made when the cache is flushed or the entry evicted.
//
// A Cache and its CachedStores are not safe for concurrent use: they belong
// to the task's goroutine.
//
// Its size is the sum over its entries, in every store it wraps, of
// len(key) + len(value) + CacheEntryOverhead. (The value below an entry that
// a dirty entry remembers for its flush listener is not counted.) When a
// write, or a Get that missed and caches what it read, takes the size over
// maxBytes, the least recently used entries are evicted until it is within
// maxBytes again; a dirty entry is written down (and its store's listener
// called) before it goes.
//
// The cache assumes it is the only writer of the stores it wraps while it
// holds entries: restore and wipe stores before using the cache, and drop
// the cache with its task when the writes below it are discarded
// (TaskState.Close without Commit).
type Cache struct {
	maxBytes int64
	clock    *int64
	size     int64
	lru      entry // sentinel: lru.next is the most recently used entry
	stores   []*CachedStore
	free     []*entry
	evicting bool // an eviction loop runs: nested writes leave eviction to it
}

// NewCache returns a record cache of at most maxBytes (see Cache);
// maxBytes must be positive (a task without caching wraps no store).
//
// clock points at the task's record time. The cache reads it as the time
// of each write (Flushed's Timestamp), and while it writes an entry down it
// sets it to the entry's time (restoring it afterwards), so the changelog
// records and the downstream records of a flush or eviction carry the time
// of the entry's last write, as in Kafka Streams. nil means time 0.
func NewCache(maxBytes int64, clock *int64) *Cache {
	c := &Cache{maxBytes: maxBytes, clock: clock}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// entry is a cached key. A clean entry holds the value below (nil: none);
// a dirty one holds a write not yet written down (nil: a delete).
type entry struct {
	key      string
	value    []byte // never modified in place: writes replace the slice
	old      []byte // for a dirty entry with oldKnown: the value below
	oldKnown bool
	dirty    bool
	ts       int64 // timestamp of the last write
	store    *CachedStore
	prev     *entry // LRU list
	next     *entry
	dprev    *entry // the store's dirty list, in order of first becoming dirty
	dnext    *entry
}

func (e *entry) size() int64 { return int64(len(e.key)+len(e.value)) + CacheEntryOverhead }

// Wrap returns s behind the cache. Stores are flushed in the order they
// were wrapped.
func (c *Cache) Wrap(s state.BytesStore) *CachedStore {
	cs := &CachedStore{c: c, below: s, entries: make(map[string]*entry)}
	c.stores = append(c.stores, cs)
	return cs
}

func (c *Cache) now() int64 {
	if c.clock == nil {
		return 0
	}
	return *c.clock
}

// Flush writes every dirty entry down: store by store in the order they
// were wrapped, each store's keys in the order they first became dirty.
// Entries stay cached, clean. Writes that listeners make during the flush
// are flushed too, so no entry is dirty when Flush returns nil.
//
// After an error the cache's contents are undefined: the task must fail
// and be closed without committing.
func (c *Cache) Flush() error {
	for {
		flushed := false
		for _, cs := range c.stores {
			for e := cs.dirtyHead; e != nil; e = cs.dirtyHead {
				flushed = true
				cs.unlinkDirty(e)
				if err := cs.writeDown(e); err != nil {
					return err
				}
			}
		}
		if !flushed {
			return nil
		}
	}
}

// maybeEvict evicts least recently used entries until the cache fits.
func (c *Cache) maybeEvict() error {
	if c.evicting || c.size <= c.maxBytes {
		return nil
	}
	c.evicting = true
	defer func() { c.evicting = false }()
	for c.size > c.maxBytes && c.lru.prev != &c.lru {
		e := c.lru.prev
		cs := e.store
		c.unlinkLRU(e)
		delete(cs.entries, e.key)
		c.size -= e.size()
		if e.dirty {
			cs.unlinkDirty(e)
			if err := cs.writeDown(e); err != nil {
				return err
			}
		}
		c.release(e)
	}
	return nil
}

func (c *Cache) newEntry() *entry {
	if n := len(c.free); n > 0 {
		e := c.free[n-1]
		c.free = c.free[:n-1]
		return e
	}
	return new(entry)
}

func (c *Cache) release(e *entry) {
	*e = entry{}
	if len(c.free) < freeEntries {
		c.free = append(c.free, e)
	}
}

func (c *Cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	e.next.prev = e
	c.lru.next = e
}

func (c *Cache) unlinkLRU(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// CachedStore is a store behind a Cache; it implements BytesStore. Get
// returns a copy the caller owns. Put copies key and value. Writes stay in
// the cache until it flushes or evicts them.
//
// A CachedStore is not safe for concurrent use.
type CachedStore struct {
	c         *Cache
	below     state.BytesStore
	entries   map[string]*entry // nil when the cache is disabled
	dirtyHead *entry
	dirtyTail *entry
	listener  func(key, value, old []byte, ts int64) error
}

var _ state.BytesStore = (*CachedStore)(nil)

// SetListener installs fn to be called for each dirty entry written down to
// the store below, after the write: value is the entry's value (nil: a
// delete), old the value below before the write (nil: none), and ts the
// timestamp of the entry's last write. A delete that finds no value below
// is written down without calling fn. key, value and old are valid only
// during the call and must not be modified.
//
// fn is called from Flush, and from the Put, Delete or Get whose eviction
// writes the entry down; its error is returned there. With a disabled cache
// fn is called from every Put and Delete. Without a listener the cache does
// not read old values.
func (cs *CachedStore) SetListener(fn func(key, value, old []byte, ts int64) error) {
	cs.listener = fn
}

// Name returns the name of the store below.
func (cs *CachedStore) Name() string { return cs.below.Name() }

// Get returns a copy of the value of key. On a miss it reads the store
// below and caches what it read, a clean entry (absence included).
func (cs *CachedStore) Get(key []byte) ([]byte, error) {
	c := cs.c
	if e := cs.entries[string(key)]; e != nil {
		c.unlinkLRU(e)
		c.pushFront(e)
		return bytes.Clone(e.value), nil
	}
	v, err := cs.below.Get(key)
	if err != nil {
		return nil, err
	}
	e := c.newEntry()
	e.key, e.value, e.store = string(key), v, cs
	cs.entries[e.key] = e
	c.pushFront(e)
	c.size += e.size()
	if err := c.maybeEvict(); err != nil {
		return nil, err
	}
	return bytes.Clone(v), nil
}

// Put caches a copy of key=value as a dirty entry. A nil value is Delete.
func (cs *CachedStore) Put(key, value []byte) error {
	if value == nil {
		return cs.Delete(key)
	}
	return cs.write(key, bytes.Clone(value))
}

// Delete caches a delete of key, a dirty entry without value.
func (cs *CachedStore) Delete(key []byte) error {
	return cs.write(key, nil)
}

// write makes key's entry dirty with value v, which it owns.
func (cs *CachedStore) write(key, v []byte) error {
	c := cs.c
	e := cs.entries[string(key)]
	if e == nil {
		e = c.newEntry()
		e.key, e.store = string(key), cs
		cs.entries[e.key] = e
		c.size += e.size()
	} else {
		if !e.dirty {
			// Clean: the cached value is the one below.
			e.old, e.oldKnown = e.value, true
		}
		c.size -= int64(len(e.value))
		c.unlinkLRU(e)
	}
	c.pushFront(e)
	e.value = v
	c.size += int64(len(v))
	e.ts = c.now()
	if !e.dirty {
		e.dirty = true
		e.dprev, e.dnext = cs.dirtyTail, nil
		if cs.dirtyTail != nil {
			cs.dirtyTail.dnext = e
		} else {
			cs.dirtyHead = e
		}
		cs.dirtyTail = e
	}
	return c.maybeEvict()
}

// unlinkDirty removes dirty entry e from the dirty list and marks it clean.
func (cs *CachedStore) unlinkDirty(e *entry) {
	if e.dprev != nil {
		e.dprev.dnext = e.dnext
	} else {
		cs.dirtyHead = e.dnext
	}
	if e.dnext != nil {
		e.dnext.dprev = e.dprev
	} else {
		cs.dirtyTail = e.dprev
	}
	e.dprev, e.dnext = nil, nil
	e.dirty = false
}

// writeDown writes entry e (just unlinked from the dirty list) to the store
// below and calls the listener, reading the old value below first unless
// the entry remembers it. e's state is updated before the listener runs,
// as the listener may write to the cache again.
func (cs *CachedStore) writeDown(e *entry) error {
	key, value, ts, old, oldKnown := bytesOf(e.key), e.value, e.ts, e.old, e.oldKnown
	e.old, e.oldKnown = nil, false
	if clock := cs.c.clock; clock != nil {
		defer func(saved int64) { *clock = saved }(*clock)
		*clock = ts
	}
	if cs.listener != nil && !oldKnown {
		var err error
		if old, err = cs.below.Get(key); err != nil {
			return err
		}
	}
	var err error
	if value == nil {
		err = cs.below.Delete(key)
	} else {
		err = cs.below.Put(key, value)
	}
	if err != nil {
		return err
	}
	if cs.listener != nil && (value != nil || old != nil) {
		return cs.listener(key, value, old, ts)
	}
	return nil
}

// cachedKV is a cached entry as Scan saw it when it started.
type cachedKV struct {
	key   string
	value []byte
}

// Scan merges the cached entries of [lower, upper) (cached deletes hide
// keys below) with the store below, in key order or reverse. It sees the
// entries as they were when it started: writes fn makes are not seen.
// Scanning does not count as use for eviction.
func (cs *CachedStore) Scan(lower, upper []byte, reverse bool, fn func(key, value []byte) bool) error {
	if lower != nil && upper != nil && bytes.Compare(lower, upper) >= 0 {
		return nil
	}
	var snap []cachedKV
	for k, e := range cs.entries {
		if (lower == nil || k >= string(lower)) && (upper == nil || k < string(upper)) {
			snap = append(snap, cachedKV{k, e.value})
		}
	}
	dir := 1
	if reverse {
		dir = -1
	}
	slices.SortFunc(snap, func(a, b cachedKV) int {
		switch {
		case a.key < b.key:
			return -dir
		case a.key > b.key:
			return dir
		}
		return 0
	})
	i, stopped := 0, false
	// emit yields a cached entry unless it is a delete.
	emit := func(kv cachedKV) bool {
		if kv.value == nil {
			return true
		}
		if !fn(bytesOf(kv.key), kv.value) {
			stopped = true
			return false
		}
		return true
	}
	err := cs.below.Scan(lower, upper, reverse, func(k, v []byte) bool {
		for i < len(snap) {
			cmp := bytes.Compare(bytesOf(snap[i].key), k) * dir
			if cmp > 0 {
				break
			}
			i++
			if !emit(snap[i-1]) {
				return false
			}
			if cmp == 0 {
				return true // the cached entry hides the one below
			}
		}
		if !fn(k, v) {
			stopped = true
			return false
		}
		return true
	})
	if err != nil || stopped {
		return err
	}
	for ; i < len(snap); i++ {
		if !emit(snap[i]) {
			break
		}
	}
	return nil
}

// ApproximateNumEntries returns the estimate of the store below, which does
// not count entries not yet written down.
func (cs *CachedStore) ApproximateNumEntries() (int64, error) {
	return cs.below.ApproximateNumEntries()
}

// bytesOf returns the bytes of s without copying. They must not be
// modified: the cache passes them down and to listeners as read-only keys.
func bytesOf(s string) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
