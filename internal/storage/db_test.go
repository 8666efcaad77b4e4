package storage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/runnel-dev/runnel/state"
)

func TestOpenLocked(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"mem", vfs.NewMem(), "state"},
		{"disk", vfs.Default, t.TempDir()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openOn(t, tc.fs, tc.dir)
			_, err := Open(tc.dir, Options{FS: tc.fs})
			if !errors.Is(err, state.ErrLocked) {
				t.Fatalf("second Open: got %v, want an error wrapping state.ErrLocked", err)
			}
			if !strings.Contains(err.Error(), tc.dir) {
				t.Errorf("error %q does not name the directory %s", err, tc.dir)
			}
			closeDB(t, db)
			db2, err := Open(tc.dir, Options{FS: tc.fs})
			if err != nil {
				t.Fatalf("Open after Close: %v", err)
			}
			if err := db2.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

const lockHolderEnv = "RUNNEL_STATE_TEST_HOLD_LOCK"

// holdLock runs in a child process: it opens the DB in the directory named
// by lockHolderEnv, says so on stdout, and holds it until stdin closes.
func holdLock() {
	db, err := Open(os.Getenv(lockHolderEnv), Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := db.Close(); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func TestOpenLockedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock holder: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q, %v", line, err)
	}
	_, err = Open(dir, Options{})
	if !errors.Is(err, state.ErrLocked) {
		t.Fatalf("Open while another process holds the directory: got %v, want state.ErrLocked", err)
	}
}

// corruptManifest flips bytes of the MANIFEST of the database in dir.
func corruptManifest(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(names, func(n string) bool { return strings.HasPrefix(n, "MANIFEST-") })
	if i < 0 {
		t.Fatalf("no MANIFEST in %v", names)
	}
	f, err := fs.OpenReadWrite(fs.PathJoin(dir, names[i]), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, st.Size())
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	for j := 8; j < len(buf); j += 7 {
		buf[j] ^= 0xff
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenCorruptStartsFresh(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   vfs.FS
		dir  string
	}{
		{"mem", vfs.NewMem(), "state"},
		{"disk", vfs.Default, t.TempDir()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openOn(t, tc.fs, tc.dir)
			ts := db.Task("0_0")
			s := ts.Open("counts", state.Persistent)
			mustPut(t, s, "a", "1")
			if err := ts.Commit(map[string]int64{"counts": 7}); err != nil {
				t.Fatal(err)
			}
			closeDB(t, db)
			corruptManifest(t, tc.fs, tc.dir)

			var logs bytes.Buffer
			db, err := Open(tc.dir, Options{FS: tc.fs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("Open of a corrupt database: %v", err)
			}
			defer closeDB(t, db)
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "corrupt") {
				t.Errorf("no warning saying why the database was deleted; logs:\n%s", logs.String())
			}
			ts = db.Task("0_0")
			s = ts.Open("counts", state.Persistent)
			if _, ok, err := ts.Checkpoint("counts"); ok || err != nil {
				t.Errorf("checkpoint after recovery: ok=%v err=%v, want none", ok, err)
			}
			if v := mustGet(t, s, "a"); v != nil {
				t.Errorf("a=%q after recovery, want none", v)
			}
			// The fresh database works.
			mustPut(t, s, "b", "2")
			if err := ts.Commit(map[string]int64{"counts": 1}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseWithOpenTask(t *testing.T) {
	db, _ := openMem(t)
	ts := db.Task("1_2")
	err := db.Close()
	if err == nil || !strings.Contains(err.Error(), "1_2") {
		t.Fatalf("Close with task 1_2 open: %v, want an error naming it", err)
	}
	ts.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); !errors.Is(err, state.ErrClosed) {
		t.Errorf("second Close: %v, want state.ErrClosed", err)
	}
}

func TestTaskOpenTwicePanics(t *testing.T) {
	db, _ := openMem(t)
	db.Task("0_1")
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "0_1") {
			t.Errorf("second Task(0_1): recovered %v, want a panic naming the task", r)
		}
	}()
	db.Task("0_1")
}

// TestKeyLayout checks that tasks and stores whose names are prefixes of
// each other stay apart.
func TestKeyLayout(t *testing.T) {
	db, _ := openMem(t)
	names := []struct{ task, store string }{{"0_1", "a"}, {"0_1", "ab"}, {"0_10", "a"}, {"0_1", "a\x00b"}}
	for _, n := range names {
		ts := db.Task(n.task)
		s := ts.Open(n.store, state.Persistent)
		mustPut(t, s, "k", n.task+"/"+n.store)
		if err := ts.Commit(map[string]int64{n.store: 1}); err != nil {
			t.Fatal(err)
		}
		ts.Close()
	}
	for _, n := range names {
		ts := db.Task(n.task)
		s := ts.Open(n.store, state.Persistent)
		if got := scanAll(t, s, nil, nil, false); !slices.Equal(got, []string{"k=" + n.task + "/" + n.store}) {
			t.Errorf("%s/%q: %v", n.task, n.store, got)
		}
		ts.Close()
	}
}
