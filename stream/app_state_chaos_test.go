package stream_test

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAppStateChaos runs the stateful crash child as two instances of one
// application, each with its own state directory that outlives its
// processes, while input keeps arriving. At seeded random points one of
// them is killed with SIGKILL and restarted on the same state directory,
// either at once or after the other has taken over all tasks, so tasks
// move between the instances and are restored from local checkpoints and
// changelog tails; each run has a seeded random record cache size, and
// repartition topics are purged often. After the last kill both run until everything is
// committed and stop cleanly. Then, under at-least-once, every input word
// is in the output, no count is below the truth, and the changelog agrees
// with the counts output. Last, a fresh instance with an empty state
// directory restores every changelog in full and counts a few more lines:
// its counts must continue exactly from the final counts, so the state
// restored from the changelog is the state the crashed instances built.
// Set RUNNEL_CHAOS_SEED to replay a run.
func TestAppStateChaos(t *testing.T) {
	skipShort(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_CHAOS_SEED")

	e := newE2E(t, 2*time.Minute)
	const appID = "chaos-e2e"
	spec := crashChildSpec{Brokers: e.c.Brokers(), AppID: appID, Input: "lines", Output: "words", Counts: "counts"}
	repartition := appID + "-counts-repartition"
	changelog := appID + "-counts-changelog"
	e.crashTopics(spec)
	in := e.newChaosInput(spec.Input)
	adm := kadm.NewClient(in.cl)

	// The two instances: their state directories, current runs and every
	// run so far (whose logs are printed if the test fails).
	names := [2]string{"A", "B"}
	dirs := [2]string{t.TempDir(), t.TempDir()}
	var (
		cur  [2]*crashChild
		runs []chaosRun
		nrun [2]int
	)
	logRunsOnFailure(t, &runs, 40)
	// start starts a run of instance i. Each run gets a seeded random
	// record cache: the default (changelog writes only at commits), a
	// tiny one (evictions write changelog records between commits, which
	// a crash leaves past the local checkpoint) or none. Repartition
	// topics are purged often, while tasks move.
	start := func(i int) {
		s := spec
		s.StateDir = dirs[i]
		s.CacheMaxBytes = []int64{0, 2 << 10, -1}[rng.IntN(3)]
		s.PurgeInterval = 250 * time.Millisecond
		cur[i] = e.startCrashChild(s)
		runs = append(runs, chaosRun{fmt.Sprintf("%s#%d (cache %d)", names[i], nrun[i], s.CacheMaxBytes), cur[i]})
		nrun[i]++
	}
	// alive fails when a current child has exited.
	alive := func(is ...int) error {
		for _, i := range is {
			if ok, err := cur[i].exited(); ok {
				return fmt.Errorf("child %s exited (%v):\n%s", names[i], err, cur[i].out.tail(50))
			}
		}
		return nil
	}
	ends := func(topic string) map[int32]int64 {
		t.Helper()
		l, err := adm.ListEndOffsets(e.ctx, topic)
		if err == nil {
			err = l.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
		return out
	}
	// waitCommitted waits until the group has committed every record of
	// the topics produced so far, a topic's end offsets being listed once
	// the topics before it (which feed it) are committed.
	waitCommitted := func(what string, topics []string, is ...int) {
		t.Helper()
		for _, topic := range topics {
			want := ends(topic)
			e.waitFor(what+": all records of "+topic+" committed", func() (bool, error) {
				if err := alive(is...); err != nil {
					return false, err
				}
				offs, err := e.c.CommittedOffsets(e.ctx, appID, topic)
				for p, end := range want {
					if offs[p] < end {
						return false, err
					}
				}
				return true, err
			})
		}
	}
	committed := func(topic string) map[int32]int64 {
		t.Helper()
		return e.committed(appID, topic)
	}
	// assigned reports whether child i's current run has been assigned
	// tasks.
	assigned := func(i int) bool { return cur[i].out.contains(`msg="tasks assigned"`) }

	// Chaos: kill one of two busy instances at seeded random points and
	// restart it on its state directory.
	const kills = 6
	if err := in.produce(e, 200); err != nil { // input before the first start
		t.Fatal(err)
	}
	start(0)
	start(1)
	stopInput := in.background(t, e)
	snapIn, snapRep := committed(spec.Input), committed(repartition)
	first := rng.IntN(2)
	for k := range kills {
		// The first two kills hit both instances, each restarted after a
		// takeover, so stateful tasks surely move both ways and come back
		// to an instance that has a stale checkpoint for them; then
		// victims and restarts are random.
		victim := rng.IntN(2)
		if k < 2 {
			victim = (first + k) % 2
		}
		other := 1 - victim
		// Kill point: after the group made progress on every input and
		// repartition partition since the last restart, with the
		// restarted child in it (its tasks processing or committed), or,
		// one time in four, as soon as the victim has been assigned
		// tasks (so possibly while it restores, or during a rebalance).
		early := rng.IntN(4) == 0
		e.waitFor(fmt.Sprintf("kill %d: the group to make progress", k), func() (bool, error) {
			if err := alive(0, 1); err != nil {
				return false, err
			}
			if early {
				return assigned(victim), nil
			}
			if !assigned(0) || !assigned(1) {
				return false, nil
			}
			for _, c := range []struct {
				topic string
				snap  map[int32]int64
			}{{spec.Input, snapIn}, {repartition, snapRep}} {
				offs, err := e.c.CommittedOffsets(e.ctx, appID, c.topic)
				if err != nil {
					return false, err
				}
				for p := range int32(3) {
					if offs[p] <= c.snap[p] {
						return false, nil
					}
				}
			}
			return true, nil
		})
		delay := time.Duration(rng.Int64N(int64(600 * time.Millisecond)))
		<-time.After(delay)
		if err := alive(other); err != nil {
			t.Fatal(err)
		}
		killChild(t, cur[victim])
		// Restart at once (the dead member may still be in the group), or
		// once the other instance has taken over every task and processed
		// all input produced up to the kill: the victim's tasks then come
		// back to it with changelog tails written by the other.
		takeover := k < 2 || rng.IntN(2) == 0
		if takeover {
			waitCommitted(fmt.Sprintf("kill %d: %s to take over", k, names[other]), []string{spec.Input, repartition}, other)
		}
		start(victim)
		snapIn, snapRep = committed(spec.Input), committed(repartition)
		t.Logf("kill %d: %s, %v after the kill point (early %v); restarted after a takeover: %v, as %s",
			k, names[victim], delay.Round(time.Millisecond), early, takeover, runs[len(runs)-1].name)
	}
	stopInput()

	// Both run until all input and the repartition topic are committed,
	// then stop cleanly.
	waitCommitted("the end", []string{spec.Input, repartition}, 0, 1)
	for i := range cur {
		terminateChild(t, cur[i])
	}
	for i := range cur {
		e.waitChildShutdown("child "+names[i]+" to shut down", "child "+names[i], cur[i], 50)
	}

	// At-least-once: every word is in the output, no count is below the
	// truth.
	words, truth, lines := in.snapshot()
	out := e.readAll(spec.Output)
	checkWordsDelivered(t, out, words)
	final := e.e2eFinalCounts(spec.Counts)
	over := checkCountsAtLeast(t, final, truth)
	// What the instances stored (their changelog) is what they output.
	logged := e.e2eFinalCounts(changelog)
	if !maps.Equal(logged, final) {
		for _, k := range slices.Sorted(maps.Keys(truth)) {
			if logged[k] != final[k] {
				t.Errorf("key %s: changelog says %d, counts output %d", k, logged[k], final[k])
			}
		}
	}

	// Restoration statistics of the children, from their logs.
	var tails, fulls, restoredRecs int64
	for _, r := range runs {
		for _, m := range chaosRestoredRE.FindAllStringSubmatch(r.child.out.String(), -1) {
			from, _ := strconv.ParseInt(m[1], 10, 64)
			n, _ := strconv.ParseInt(m[3], 10, 64)
			if from > 0 {
				tails++
			} else {
				fulls++
			}
			restoredRecs += n
		}
	}
	var purged int64
	if starts, err := adm.ListStartOffsets(e.ctx, repartition); err == nil {
		starts.Each(func(o kadm.ListedOffset) { purged += o.Offset })
	}
	if tails == 0 {
		t.Errorf("no child restored a store from a local checkpoint: the chaos did not exercise tail restoration")
	}
	if t.Failed() {
		t.FailNow()
	}

	// A fresh instance with an empty state directory restores every
	// changelog in full, then counts one more line per line key, whose
	// words have seeded random suffixes: its counts must continue from
	// the final ones exactly (nothing is left to reprocess).
	changelogEnd := e.e2eEndSum(changelog)
	b := stream.NewBuilder()
	crashTopology(b, spec)
	cfg, _ := e.config(appID)
	cfg.Guarantee = stream.AtLeastOnce
	rc := &restoreCounter{}
	cfg.RestoreListener = rc
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fresh := e.start(app)
	added := map[string]int64{}
	var recs []*kgo.Record
	for l := range 13 {
		key := fmt.Sprintf("k%d", l)
		var ws []string
		for j := range 1 + rng.IntN(4) {
			suffix := string(rune('a' + rng.IntN(3)))
			ws = append(ws, fmt.Sprintf("x%02d-%d:%s", l, j, suffix))
			added[suffix+"-"+key]++
		}
		recs = append(recs, &kgo.Record{Topic: spec.Input, Key: []byte(key), Value: []byte(strings.Join(ws, " "))})
	}
	e.produce(recs...)
	e.e2eWaitCommitted(appID, []string{spec.Input, repartition}, fresh)
	if err := fresh.stop(t); err != nil {
		t.Fatalf("fresh instance: %v", err)
	}
	if n, begun, ended := rc.get(); n != changelogEnd || begun != ended || begun != 3 {
		t.Errorf("fresh instance restored %d records (%d starts, %d ends), want the whole changelog, %d records of 3 partitions", n, begun, ended, changelogEnd)
	}
	after := e.e2eFinalCounts(spec.Counts)
	for _, k := range slices.Sorted(maps.Keys(truth)) {
		if want := final[k] + added[k]; after[k] != want {
			t.Errorf("key %s: count %d after the full restore and %d more, want %d + %d = %d", k, after[k], added[k], final[k], added[k], want)
		}
	}
	if len(after) != len(truth) {
		t.Errorf("counts for %d keys after the full restore, want %d", len(after), len(truth))
	}
	t.Logf("seed %d: %d kills; %d input lines, %d words, %d output records; counts over the truth by %d in all; children restored %d records in %d tail and %d full restorations and purged %d repartition records; the fresh instance restored %d",
		seed, kills, lines, len(words), len(out), over, restoredRecs, tails, fulls, purged, changelogEnd)
}
