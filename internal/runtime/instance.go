package runtime

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/state"
)

// stateDirInstanceID returns the instance id stored next to the state
// directory dir, in dir + ".instance-id" (the state database owns dir and
// may wipe it), creating it on first use, and a lock on dir + ".lock" that
// the caller holds while it runs, so that two running instances never
// share one id (one transactional id: they would fence each other). The id
// survives restarts, so a restarted instance fences its previous
// incarnation's open transaction at once instead of waiting for the
// transaction timeout.
func stateDirInstanceID(fs vfs.FS, dir string) (id string, lock io.Closer, err error) {
	if fs == nil {
		fs = vfs.Default
	}
	if err := fs.MkdirAll(fs.PathDir(dir), 0o755); err != nil {
		return "", nil, fmt.Errorf("stream: creating the state directory: %w", err)
	}
	lock, err = fs.Lock(dir + ".lock")
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s is used by another running instance (%v); give each instance its own StateDir or InstanceID", state.ErrLocked, dir, err)
	}
	id, err = readInstanceID(fs, dir+".instance-id")
	if err != nil {
		lock.Close()
		return "", nil, err
	}
	return id, lock, nil
}

// readInstanceID reads the id in path, or writes a new random one there
// (written to a temporary file, synced and renamed, so a crash never
// leaves a partial id).
func readInstanceID(fs vfs.FS, path string) (string, error) {
	f, err := fs.Open(path)
	if err == nil {
		b, err := io.ReadAll(f)
		f.Close()
		if id := strings.TrimSpace(string(b)); err == nil && id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("stream: reading the instance id: %w", err)
	}
	id := strings.ToLower(rand.Text())
	tmp := path + ".tmp"
	f, err = fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err == nil {
		_, err = io.WriteString(f, id+"\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		return "", fmt.Errorf("stream: writing the instance id: %w", err)
	}
	return id, nil
}
