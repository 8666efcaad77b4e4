package stream_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Crash tests of exactly-once: the crash child of TestAppCrashRecovery,
// killed with SIGKILL over and over, must leave read_committed readers
// with each input word exactly once and with count updates that never
// count a record twice; and a restart after a SIGKILL must restore its
// state from the local checkpoint plus the changelog tail, not from
// scratch.

// crashHarness runs crash children of one application on one state
// directory, one at a time, and keeps them all so that their logs are
// printed if the test fails.
type crashHarness struct {
	e        *e2eEnv
	spec     crashChildSpec
	adm      *kadm.Client
	children []*crashChild
}

func (e *e2eEnv) newCrashHarness(spec crashChildSpec) *crashHarness {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	h := &crashHarness{e: e, spec: spec, adm: kadm.NewClient(cl)}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			for i, c := range h.children {
				ok, err := c.exited()
				e.t.Logf("logs of child #%d (exited %v: %v):\n%s", i, ok, err, c.out.tail(40))
			}
		}
	})
	return h
}

// start starts a child on the harness's state directory.
func (h *crashHarness) start() *crashChild {
	h.e.t.Helper()
	c := h.e.startCrashChild(h.spec)
	h.children = append(h.children, c)
	return c
}

// childAlive returns an error holding the child's log tail if it has exited.
func childAlive(c *crashChild) error {
	if ok, err := c.exited(); ok {
		return fmt.Errorf("child exited (%v):\n%s", err, c.out.tail(50))
	}
	return nil
}

// endSum returns the sum of topic's end offsets (high watermarks).
func (h *crashHarness) endSum(topic string) (int64, error) {
	return endOffsetSum(h.e.ctx, h.adm, topic)
}

// kill SIGKILLs the child and waits for it to be gone.
func (h *crashHarness) kill(c *crashChild) {
	h.e.t.Helper()
	killChild(h.e.t, c)
}

// waitCommitted waits until the application has committed every record
// of the topics produced so far, in order (a topic is listed once the
// topics feeding it are committed), failing if the child exits. The
// target of a partition is one past its last data record, which under
// exactly-once a transaction marker follows.
func (h *crashHarness) waitCommitted(c *crashChild, topics ...string) {
	h.e.t.Helper()
	h.e.e2eWaitCommittedAlive(h.spec.AppID, topics, func() error { return childAlive(c) })
}

// shutdown stops the child with SIGTERM and fails unless it exits
// cleanly.
func (h *crashHarness) shutdown(c *crashChild) {
	h.e.t.Helper()
	terminateChild(h.e.t, c)
	h.e.waitChildShutdown("the child to shut down", "child", c, 50)
}

// tasksAssignedRE matches the log line of a child that was assigned tasks.
var tasksAssignedRE = regexp.MustCompile(`msg="tasks assigned" .*tasks=[1-9]`)

// crashRounds is the outcome of runCrashRounds.
type crashRounds struct {
	in        *chaosInput
	kills     int
	early     int           // kills as soon as tasks were assigned
	slowest   time.Duration // longest wait from a start to its kill point
	lastStart time.Duration // from the last child's start to all input committed
}

// runCrashRounds runs the crash child of spec through kills SIGKILLs at
// seeded random points, each followed by a restart on the same state
// directory. Input arrives before the first start, while each child runs
// and while it is down. A kill point is a random delay of up to 400ms
// after the child's first commit of input (commits come every 100ms, so
// the kill lands in any phase of a transaction), or, one time in four,
// after it was assigned tasks (so possibly while it restores or before
// its first commit). A last child then processes and commits everything
// and shuts down with SIGTERM.
//
// Kill points come after the child has joined the group: kfake never
// expires a member killed while its JoinGroup is pending (the join
// response cannot be delivered, so no session timer starts, and the
// leader's SyncGroup cancels the pending-sync timeout), and such a
// member keeps its partitions from the next child forever.
func (e *e2eEnv) runCrashRounds(rng *rand.Rand, spec crashChildSpec, kills int) crashRounds {
	t := e.t
	t.Helper()
	h := e.newCrashHarness(spec)
	res := crashRounds{in: e.newChaosInput(spec.Input), kills: kills}
	mustProduce := func(n int) {
		t.Helper()
		if err := res.in.produce(e, n); err != nil {
			t.Fatal(err)
		}
	}

	// Each child gets a seeded random record cache: the default (the
	// changelog and the counts are written at commits only), a tiny one
	// (evictions write them between commits, into the open transaction)
	// or none.
	startChild := func() *crashChild {
		h.spec.CacheMaxBytes = []int64{0, 2 << 10, -1}[rng.IntN(3)]
		return h.start()
	}
	mustProduce(200) // input before the first start
	for round := range kills {
		before := e.committed(spec.AppID, spec.Input)
		child := startChild()
		started := time.Now()
		stop := res.in.background(t, e)
		early := rng.IntN(4) == 0
		if early {
			res.early++
		}
		e.waitFor(fmt.Sprintf("round %d: the child's kill point (early %v)", round, early), func() (bool, error) {
			if err := childAlive(child); err != nil {
				return false, err
			}
			if early {
				return tasksAssignedRE.MatchString(child.out.String()), nil
			}
			offs, err := h.e.c.CommittedOffsets(e.ctx, spec.AppID, spec.Input)
			return !maps.Equal(offs, before), err
		})
		res.slowest = max(res.slowest, time.Since(started))
		delay := time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		<-time.After(delay)
		h.kill(child)
		stop()
		t.Logf("round %d (cache %d): SIGKILL %v after the kill point (early %v), %v after the start; committed input %v",
			round, h.spec.CacheMaxBytes, delay.Round(time.Millisecond), early, time.Since(started).Round(time.Millisecond), e.committed(spec.AppID, spec.Input))
		mustProduce(50) // input while it is down
	}

	// Last run: everything processed and committed, then a clean
	// shutdown.
	child := startChild()
	started := time.Now()
	mustProduce(100)
	h.waitCommitted(child, spec.Input, spec.AppID+"-counts-repartition")
	res.lastStart = time.Since(started)
	h.shutdown(child)
	return res
}

// newCrashSpec creates the topics of the crash child and returns its spec.
func (e *e2eEnv) newCrashSpec(appID string, g stream.Guarantee) crashChildSpec {
	e.t.Helper()
	spec := crashChildSpec{Brokers: e.c.Brokers(), AppID: appID, Input: "lines", Output: "words", Counts: "counts",
		StateDir: e.t.TempDir(), Guarantee: g}
	e.crashTopics(spec)
	return spec
}

// TestAppEOSCrashRecovery kills the crash child, under exactly-once, with
// SIGKILL at seeded random points at least ten times while input keeps
// arriving, restarting it each time on the same state directory (so with
// the same transactional id, which fences the killed one's open
// transaction), and finally lets it commit everything and stop. Then a
// read_committed reader finds each input word exactly once in the
// output, and each count's committed updates strictly increasing, never
// above the truth and ending at it: no record was lost or counted twice,
// in the output or in the state. Set RUNNEL_EOS_CRASH_SEED to replay a
// run.
func TestAppEOSCrashRecovery(t *testing.T) {
	skipShort(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_EOS_CRASH_SEED")
	e := newE2E(t, 2*time.Minute)
	spec := e.newCrashSpec("eos-crash", stream.ExactlyOnce)
	res := e.runCrashRounds(rng, spec, 10)

	out := e.readAll(spec.Output)
	dups := checkWordsExactlyOnce(t, out, res.in.words)
	checkCountUpdates(t, e.readAll(spec.Counts), res.in.truth)
	if got := e.e2eFinalCounts(spec.AppID + "-counts-changelog"); !maps.Equal(got, res.in.truth) {
		t.Errorf("the changelog's last counts differ from the truth:\n got %v\nwant %v", got, res.in.truth)
	}
	// The kills must have hit open transactions that had written output:
	// their records are in the topic, aborted, which only read_committed
	// hides. Otherwise the test did not exercise exactly-once.
	raw := e.countUncommitted(spec.Output)
	if raw <= len(out) {
		t.Errorf("the output holds %d records read_uncommitted and %d committed: no kill left aborted output, the crashes did not exercise transactions", raw, len(out))
	}
	t.Logf("seed %d: %d input lines, %d words; %d output records committed (%d duplicates), %d aborted; %d SIGKILLs (%d early); slowest kill point %v; last run committed all in %v",
		seed, res.in.lines, len(res.in.words), len(out), dups, raw-len(out), res.kills, res.early,
		res.slowest.Round(time.Millisecond), res.lastStart.Round(time.Millisecond))
}

// TestAppALOSCrashRecovery runs TestAppEOSCrashRecovery's crashes under
// at-least-once, to show what it guarantees: every word is delivered (none
// lost) and no count is below the truth. A crash between producing output
// and committing the input usually duplicates both; the duplicates seen
// are reported, not required, since a run whose kills all fall right
// after a commit has none. Set RUNNEL_ALOS_CRASH_SEED to replay a run.
func TestAppALOSCrashRecovery(t *testing.T) {
	skipShort(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_ALOS_CRASH_SEED")
	e := newE2E(t, 2*time.Minute)
	spec := e.newCrashSpec("alos-crash", stream.AtLeastOnce)
	res := e.runCrashRounds(rng, spec, 10)

	out := e.readAll(spec.Output)
	got := checkWordsDelivered(t, out, res.in.words)
	over := checkCountsAtLeast(t, e.e2eFinalCounts(spec.Counts), res.in.truth)
	// Most kills come while the child processes input it has not
	// committed yet (input arrives every 10ms, commits every 100ms): its
	// output is written again after the restart. Reported, not required.
	dups := len(out) - len(got)
	t.Logf("seed %d: %d input lines, %d words, %d output records: %d duplicates; counts over the truth by %d in all; %d SIGKILLs (%d early); last run committed all in %v",
		seed, res.in.lines, len(res.in.words), len(out), dups, over, res.kills, res.early, res.lastStart.Round(time.Millisecond))
}

// countUncommitted returns how many data records topic holds up to its
// high watermarks, read_uncommitted: committed ones, aborted ones and
// those of open transactions.
func (e *e2eEnv) countUncommitted(topic string) int {
	e.t.Helper()
	return len(e.readUncommitted(topic))
}

// TestAppEOSCrashTailRestore: under exactly-once, local state is applied
// only after its transaction commits, so a child killed with SIGKILL
// right after a commit leaves a state directory at most one transaction
// behind the committed changelog, followed by the killed transaction's
// updates, which are aborted when the child restarts. The restarted
// child restores from its local checkpoint: a few records at most of a
// state of thousands of keys, never the whole changelog, and none of
// the aborted ones; counts stay exact. Set RUNNEL_EOS_RESTORE_SEED to
// replay a run.
func TestAppEOSCrashTailRestore(t *testing.T) {
	skipShort(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_EOS_RESTORE_SEED")
	e := newE2E(t, 2*time.Minute)
	spec := e.newCrashSpec("eos-restore", stream.ExactlyOnce)
	// No record cache: every count update goes to the changelog at once,
	// into the open transaction, so a kill leaves aborted changelog
	// records past the local checkpoint, which restoration must skip.
	spec.CacheMaxBytes = -1
	h := e.newCrashHarness(spec)
	repartition, changelog := spec.AppID+"-counts-repartition", spec.AppID+"-counts-changelog"

	// Lines of three words keyed u0000..u2999, so the count store has
	// 9000 keys (3 suffixes per line key).
	const lineKeys = 3000
	var (
		mu    sync.Mutex // guards what produceLines updates
		lines int
		words []string
		truth = map[string]int64{}
	)
	produceLines := func(n int) error {
		mu.Lock()
		defer mu.Unlock()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			l := lines + i
			key := fmt.Sprintf("u%04d", l%lineKeys)
			ws := []string{fmt.Sprintf("l%06d:a", l), fmt.Sprintf("l%06d:b", l), fmt.Sprintf("l%06d:c", l)}
			for _, w := range ws {
				truth[w[len(w)-1:]+"-"+key]++
			}
			words = append(words, ws...)
			recs[i] = &kgo.Record{Topic: spec.Input, Key: []byte(key), Value: []byte(strings.Join(ws, " "))}
		}
		lines += n
		return e.c.Produce(e.ctx, recs...)
	}
	produce := func(n int) {
		t.Helper()
		if err := produceLines(n); err != nil {
			t.Fatal(err)
		}
	}
	// background produces 5 lines every 10ms until stopped, so the
	// child's count tasks always have updates in the open transaction.
	background := func() (stop func()) {
		return produceInBackground(t, func() error { return produceLines(5) }, nil)
	}

	produce(2 * lineKeys)
	child := h.start()
	h.waitCommitted(child, spec.Input, repartition)
	built, err := h.endSum(changelog)
	if err != nil {
		t.Fatal(err)
	}

	const kills = 3
	var restoredAll int64
	for k := range kills {
		// Kill point: a seeded random delay after a commit of the count
		// tasks, while input keeps arriving. A transaction holds 100ms
		// of updates, far fewer than a tenth of the state, so even if
		// the kill comes after a transaction committed and before its
		// state was applied, the restore stays below the bound.
		before := e.committed(spec.AppID, repartition)
		stop := background()
		e.waitFor(fmt.Sprintf("kill %d: a commit of new updates", k), func() (bool, error) {
			if err := childAlive(child); err != nil {
				return false, err
			}
			offs, err := e.c.CommittedOffsets(e.ctx, spec.AppID, repartition)
			return !maps.Equal(offs, before), err
		})
		delay := time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
		<-time.After(delay)
		h.kill(child)
		stop()
		logged, err := h.endSum(changelog)
		if err != nil {
			t.Fatal(err)
		}

		// The restarted child restores its stores before it processes:
		// once it has committed new input of every partition of the
		// repartition topic, it has restored all three.
		child = h.start()
		produce(30)
		h.waitCommitted(child, spec.Input, repartition)
		var restored, tails int64
		for _, m := range chaosRestoredRE.FindAllStringSubmatch(child.out.String(), -1) {
			from, _ := strconv.ParseInt(m[1], 10, 64)
			n, _ := strconv.ParseInt(m[3], 10, 64)
			if from == 0 {
				t.Errorf("kill %d: a store was restored from offset 0 (%s)", k, m[0])
			}
			restored += n
			tails++
		}
		if child.out.contains(`msg="restoring store fully`) {
			t.Errorf("kill %d: the restarted child restored a store fully: its local state was not used", k)
		}
		if restored*10 >= logged {
			t.Errorf("kill %d: the restarted child restored %d records, not under a tenth of the changelog's %d", k, restored, logged)
		}
		restoredAll += restored
		t.Logf("kill %d: SIGKILL %v after a commit; changelog %d records; the restart restored %d records in %d tail restorations",
			k, delay.Round(time.Millisecond), logged, restored, tails)
	}

	produce(lineKeys) // every key once more
	h.waitCommitted(child, spec.Input, repartition)
	h.shutdown(child)
	checkCountUpdates(t, e.readAll(spec.Counts), truth)
	logged := e.readAll(changelog)
	if got := e.e2eFinalCounts(changelog); !maps.Equal(got, truth) {
		t.Errorf("the changelog's last counts differ from the truth in %d of %d keys", countDiffs(got, truth), len(truth))
	}
	dups := checkWordsExactlyOnce(t, e.readAll(spec.Output), words)
	// The kills must have left aborted updates in the changelog, past
	// the local checkpoints: restoration skipped them (read_committed),
	// or the counts above would be too high.
	aborted := e.countUncommitted(changelog) - len(logged)
	if aborted <= 0 {
		t.Errorf("no kill left aborted changelog records: restoration past them was not exercised")
	}
	t.Logf("seed %d: %d lines, %d keys counted, changelog %d records after the first run; %d SIGKILLs left %d aborted changelog records; %d records restored in all; %d duplicates",
		seed, lines, len(truth), built, kills, aborted, restoredAll, dups)
}

// countDiffs returns the number of keys whose counts differ.
func countDiffs(a, b map[string]int64) int {
	n := 0
	for k, v := range a {
		if b[k] != v {
			n++
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			n++
		}
	}
	return n
}
