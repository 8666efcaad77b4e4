package stream_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var recoveryKeys = flag.Int("recovery.keys", 1_000_000, "distinct keys of state in BenchmarkRecovery")

// BenchmarkRecovery measures how soon an exactly-once application is
// processing again after a SIGKILL, with -recovery.keys keys of state. A
// child process (TestCrashChild with CountByKey) counts that many records
// with distinct keys, over 3 partitions, into a Pebble store with a
// changelog, commits them all, and is killed with SIGKILL once idle.
// Then a record of an existing key is produced and a new child started:
//
//   - tail: on the killed child's state directory, so it restores only the
//     changelog past its local checkpoint;
//   - full: (after that child is killed too and one more record of the key
//     is produced) on an empty state directory, so it restores the whole
//     changelog, under a new transactional id.
//
// Each restart is timed from starting the process (exec included) until
// the group's committed offsets cover the new record, which under
// exactly-once is when the transaction holding its output commits: the
// time until a read_committed reader sees the application processing
// again. Failure detection is not included: each restart waits until the
// killed member has left the group (its session timeout is 1s). The new
// record's count is checked in the output (2, then 3). Reported: tail-s,
// full-s and full/tail; the children's restored records are logged.
//
//	go test ./stream -run '^$' -bench Recovery -benchtime 1x -count 2 [-recovery.keys N]
func BenchmarkRecovery(b *testing.B) {
	n := *recoveryKeys
	c := kafkatest.StartT(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	var tail, full time.Duration
	for i := 0; i < b.N; i++ {
		appID := fmt.Sprintf("recovery-%d", i)
		spec := crashChildSpec{
			Brokers: c.Brokers(), AppID: appID, Input: appID + "-in", Output: appID + "-out",
			StateDir: b.TempDir(), Guarantee: stream.ExactlyOnce, CountByKey: true,
		}
		for _, t := range []string{spec.Input, spec.Output} {
			if err := c.CreateTopic(ctx, t, pipePartitions, nil); err != nil {
				b.Fatal(err)
			}
		}
		if err := produceInput(ctx, c, spec.Input, n); err != nil {
			b.Fatal(err)
		}
		r := recoveryRun{ctx: ctx, b: b, c: c, adm: adm, spec: spec}
		r.untilCommitted("the first child")

		r.produceAgain()
		tail += r.untilCommitted("the restart on its state directory")
		r.checkCount(2)

		r.spec.StateDir = b.TempDir()
		r.produceAgain()
		full += r.untilCommitted("the restart on an empty state directory")
		r.checkCount(3)

		if _, err := adm.DeleteTopics(ctx, spec.Input, spec.Output, appID+"-counts-changelog"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(tail.Seconds()/float64(b.N), "tail-s")
	b.ReportMetric(full.Seconds()/float64(b.N), "full-s")
	b.ReportMetric(full.Seconds()/tail.Seconds(), "full/tail")
}

// recoveryRun is one iteration of BenchmarkRecovery.
type recoveryRun struct {
	ctx  context.Context
	b    *testing.B
	c    *kafkatest.Cluster
	adm  *kadm.Client
	spec crashChildSpec
}

// recoveryKey is the key whose count the restarts increase.
const recoveryKey = 7

// produceAgain produces one more record of recoveryKey, to the partition
// produceInput put it in.
func (r *recoveryRun) produceAgain() {
	r.b.Helper()
	rec := &kgo.Record{Topic: r.spec.Input, Partition: recoveryKey % pipePartitions, Key: fmt.Appendf(nil, "key-%012d", recoveryKey), Value: []byte("again")}
	if err := r.c.ProduceToPartitions(r.ctx, rec); err != nil {
		r.b.Fatal(err)
	}
}

// untilCommitted starts a child on r.spec and returns the time from its
// start until the group's committed offsets cover the input. It then
// SIGKILLs the child once the state of that commit is written (see
// waitStateWritten), and waits until it has left the group.
func (r *recoveryRun) untilCommitted(what string) time.Duration {
	r.b.Helper()
	ends := r.inputEnds()
	start := time.Now()
	child := startChild(r.ctx, r.b, r.spec)
	r.waitCommitted(what, child, ends)
	elapsed := time.Since(start)
	r.waitStateWritten(child)
	if err := child.cmd.Process.Kill(); err != nil {
		r.b.Fatal(err)
	}
	<-child.done
	restored, secs := restoredRecords(child.out.String())
	r.b.Logf("%s: input committed %v after the process started; it restored %d records (the slowest partition in %.2fs)",
		what, elapsed.Round(time.Millisecond), restored, secs)
	err := kafkatest.WaitFor(r.ctx, func() (bool, error) {
		groups, err := r.adm.DescribeGroups(r.ctx, r.spec.AppID)
		if err == nil {
			err = groups.Error()
		}
		return err == nil && len(groups[r.spec.AppID].Members) == 0, err
	})
	if err != nil {
		r.b.Fatalf("waiting for the killed child to leave the group: %v", err)
	}
	return elapsed
}

// inputEnds returns the input's end offsets.
func (r *recoveryRun) inputEnds() kadm.ListedOffsets {
	r.b.Helper()
	ends, err := r.adm.ListEndOffsets(r.ctx, r.spec.Input)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		r.b.Fatal(err)
	}
	return ends
}

// waitCommitted waits until the group's committed offsets cover ends,
// failing the benchmark if child exits.
func (r *recoveryRun) waitCommitted(what string, child *crashChild, ends kadm.ListedOffsets) {
	r.b.Helper()
	err := kafkatest.WaitFor(r.ctx, func() (bool, error) {
		if ok, err := child.exited(); ok {
			return false, fmt.Errorf("the child exited (%v):\n%s", err, child.out.tail(50))
		}
		offs, err := r.c.CommittedOffsets(r.ctx, r.spec.AppID, r.spec.Input)
		done := true
		ends.Each(func(o kadm.ListedOffset) { done = done && offs[o.Partition] >= o.Offset })
		return done, err
	})
	if err != nil {
		r.b.Fatalf("waiting for %s to commit the input: %v", what, err)
	}
}

// waitStateWritten waits until child has written the state of the commit
// that covered the input: under exactly-once the state is written after
// the transaction commits, so a SIGKILL right after the offsets show
// would make the restart restore that whole transaction from the
// changelog. Commits are sequential, so a marker record (of its own key)
// committed in a later transaction shows it was written; only the
// marker's own state may be lost.
func (r *recoveryRun) waitStateWritten(child *crashChild) {
	r.b.Helper()
	marker := &kgo.Record{Topic: r.spec.Input, Partition: 0, Key: []byte("marker"), Value: []byte("marker")}
	if err := r.c.ProduceToPartitions(r.ctx, marker); err != nil {
		r.b.Fatal(err)
	}
	r.waitCommitted("the marker record", child, r.inputEnds())
}

// checkCount checks that the last committed count of recoveryKey in the
// output is want.
func (r *recoveryRun) checkCount(want int64) {
	r.b.Helper()
	recs, err := r.c.ReadAll(r.ctx, r.spec.Output)
	if err != nil {
		r.b.Fatal(err)
	}
	key, got := fmt.Sprintf("key-%012d", recoveryKey), int64(-1)
	for _, rec := range recs {
		if string(rec.Key) == key && len(rec.Value) == 8 {
			got = int64(binary.BigEndian.Uint64(rec.Value))
		}
	}
	if got != want {
		r.b.Fatalf("count of %s in %s is %d, want %d", key, r.spec.Output, got, want)
	}
}

var restoredLine = regexp.MustCompile(`msg="restored store".* records=(\d+) seconds=([0-9.e+-]+)`)

// restoredRecords sums the records of the "restored store" lines of a
// child's log, and returns the longest restoration's seconds.
func restoredRecords(log string) (records int64, secs float64) {
	for _, m := range restoredLine.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		s, _ := strconv.ParseFloat(m[2], 64)
		records, secs = records+n, max(secs, s)
	}
	return records, secs
}
