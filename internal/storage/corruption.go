package storage

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrCorrupt is wrapped (along with ErrFailed) by the errors of every
// operation on a DB, and on the stores of its tasks, after Pebble found
// its files damaged while reading them: a block whose checksum does not
// match, a table file that is missing. The next Open wipes the database,
// and every store is restored in full from its changelog.
var ErrCorrupt = errors.New("state: state database corrupt")

// corruptMarker is the file whose presence tells Open that the database
// was found corrupt and must be wiped.
const corruptMarker = "RUNNEL-CORRUPT"

// errMarkedCorrupt is why Open wipes a database markedCorrupt.
var errMarkedCorrupt = errors.New("a previous run found it corrupt while reading it")

// corrupted fails the DB with ErrCorrupt, so that the task reading the
// damaged data fails (not only the read: a processing error handler must
// not skip records over missing state), and leaves the marker that makes
// the next Open wipe the database. It is Pebble's DataCorruption event
// (see pebbleOptions), called from the read or background compaction that
// found the damage, and must not block for long.
func (db *DB) corrupted(cause error) {
	if db.Err() != nil {
		return
	}
	f, err := db.fs.Create(db.fs.PathJoin(db.dir, corruptMarker), vfs.WriteCategoryUnspecified)
	if err == nil {
		_, err = f.Write([]byte(cause.Error() + "\n"))
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		db.log.Error("state: cannot mark the corrupt state database for wiping at the next start", "dir", db.dir, "error", err)
	}
	db.fail(fmt.Errorf("%w: %w", ErrCorrupt, cause))
}

// readErr returns the error of a failed read: when Pebble found the
// database corrupt, the DB's failure (wrapping ErrFailed and ErrCorrupt),
// otherwise err.
func (db *DB) readErr(err error) error {
	if err == nil || !pebble.IsCorruptionError(err) {
		return err
	}
	db.corrupted(err) // in case Pebble did not report it as an event
	return db.Err()
}

// markedCorrupt reports whether the database in dir was found corrupt
// by a previous run (see corrupted).
func markedCorrupt(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(fs.PathJoin(dir, corruptMarker))
	return err == nil
}
