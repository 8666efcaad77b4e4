package stream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Exactly-once under faults: a zombie instance that comes back after the
// group moved on, instances killed mid-transaction, and broker-side
// failures of the transactional requests. Both tests run crashTopology
// (the words of each line, and their counts per (suffix, line key)) and
// check its committed output exactly: every word once, exact counts.

// eosTxn identifies one transaction: under KIP-890 every transaction has
// its own producer epoch.
type eosTxn struct {
	what  string // "zombie A", "killed B"
	id    string // transactional id
	pid   int64
	epoch int16
}

func (x eosTxn) String() string {
	return fmt.Sprintf("%s (%s, producer %d epoch %d)", x.what, x.id, x.pid, x.epoch)
}

// TestAppEOSZombieFenced runs crashTopology as two child processes under
// exactly-once while input keeps arriving, and turns one of them into a
// zombie twice: frozen with SIGSTOP in the middle of a transaction until
// the group has evicted it and the other instance owns all partitions,
// then thawed with SIGCONT. The first time it comes back while its
// transaction is still open, so only its stale group generation fences it
// (KIP-447); the second time only after the other instance has committed
// on every partition, which needs the broker to abort the frozen
// transaction at its timeout (until then it holds back the repartition
// topic's last stable offset and the restoration of the changelogs), so
// its producer epoch is stale too. Each time the zombie must abort, rejoin
// and process again within seconds. Then an instance is killed with
// SIGKILL mid-transaction and restarted. Finally no record of the three
// interrupted transactions may be committed, every word must be in the
// output once, and the counts must be exact, each key's counts strictly
// increasing. Set RUNNEL_ZOMBIE_SEED to replay a run.
func TestAppEOSZombieFenced(t *testing.T) {
	skipShort(t)
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child process")
	}
	rng, seed := seededRand(t, "RUNNEL_ZOMBIE_SEED")

	e := newE2E(t, 2*time.Minute)
	const appID = "zombie-e2e"
	spec := crashChildSpec{
		Brokers: e.c.Brokers(), AppID: appID, Input: "lines", Output: "words", Counts: "counts",
		Guarantee: stream.ExactlyOnce,
		// No record cache: the count tasks produce as they process, so
		// every instance is nearly always in a transaction with records.
		CacheMaxBytes: -1,
		// Short, so the survivor does not wait long for the zombie's
		// transaction to be aborted; still 30 commit intervals.
		TransactionTimeout: 3 * time.Second,
	}
	repartition := appID + "-counts-repartition"
	changelog := appID + "-counts-changelog"
	e.crashTopics(spec)
	in := e.newChaosInput(spec.Input)
	adm := kadm.NewClient(in.cl)

	names := [2]string{"A", "B"}
	dirs := [2]string{t.TempDir(), t.TempDir()}
	var (
		cur  [2]*crashChild
		runs []chaosRun
	)
	logRunsOnFailure(t, &runs, 100000)
	start := func(i int) {
		s := spec
		s.StateDir, s.InstanceID = dirs[i], names[i]
		c := e.startCrashChild(s)
		cur[i] = c
		runs = append(runs, chaosRun{fmt.Sprintf("%s#%d", names[i], len(runs)), c})
	}
	alive := func(is ...int) error {
		for _, i := range is {
			if ok, err := cur[i].exited(); ok {
				return fmt.Errorf("child %s exited (%v):\n%s", names[i], err, cur[i].out.tail(60))
			}
		}
		return nil
	}
	topics := []string{spec.Input, repartition}
	txnID := func(i int) string { return appID + "-" + names[i] }
	// progress waits until the group is stable with members members
	// sharing the six partitions (3 input, 3 repartition), each instance
	// of busy has been seen in a transaction, cond (if not nil) holds,
	// and the group has committed on every partition since the call.
	progress := func(what string, members int, cond func() (bool, error), busy ...int) {
		t.Helper()
		snap := map[string]map[int32]int64{}
		for _, topic := range topics {
			snap[topic] = e.committed(appID, topic)
		}
		seen := map[int]bool{} // busy instances seen in a transaction
		e.waitFor(what, func() (bool, error) {
			if err := alive(busy...); err != nil {
				return false, err
			}
			for _, i := range busy {
				if !seen[i] {
					d, err := eosDescribeTxn(e, adm, txnID(i))
					if err != nil && !errors.Is(err, kerr.TransactionalIDNotFound) { // not yet initialized
						return false, err
					}
					if d.State == "Ongoing" {
						seen[i] = true
					}
				}
			}
			if len(seen) < len(busy) {
				return false, nil
			}
			if cond != nil {
				if ok, err := cond(); !ok || err != nil {
					return false, err
				}
			}
			g := e.c.Kfake().GroupInfo(appID)
			if g == nil || g.State != "Stable" || len(g.Members) != members || g.NumAssigned() != 6 {
				return false, nil
			}
			for _, m := range g.Members {
				if m.NumAssigned() == 0 {
					return false, nil
				}
			}
			for _, topic := range topics {
				offs, err := e.c.CommittedOffsets(e.ctx, appID, topic)
				if err != nil {
					return false, err
				}
				for p := range int32(3) {
					if offs[p] <= snap[topic][p] {
						return false, nil
					}
				}
			}
			return true, nil
		})
	}
	// freeze stops child i with SIGSTOP at a random point in the middle
	// of a transaction (trying again if it was stopped between two) and
	// returns the transaction.
	freeze := func(i int, what string) eosTxn {
		t.Helper()
		for try := 1; ; try++ {
			<-time.After(time.Duration(rng.Int64N(int64(200 * time.Millisecond))))
			if err := syscall.Kill(cur[i].cmd.Process.Pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			d, err := eosDescribeTxn(e, adm, txnID(i))
			if err != nil {
				t.Fatal(err)
			}
			if d.State == "Ongoing" {
				return eosTxn{what: what + " " + names[i], id: txnID(i), pid: d.ProducerID, epoch: d.ProducerEpoch}
			}
			if try == 50 {
				t.Fatalf("child %s was never stopped mid-transaction in %d tries (last state %s)", names[i], try, d.State)
			}
			if err := syscall.Kill(cur[i].cmd.Process.Pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
	}
	// zombie freezes a random instance mid-transaction until the group
	// has evicted it and the other instance owns all partitions, then
	// thaws it: early, while its transaction is still open (its stale
	// generation fences it, KIP-447), or late, once the other instance
	// committed on every partition and the broker aborted the frozen
	// transaction at its timeout (its producer epoch is stale too). It
	// must abort, rejoin and process again.
	zombie := func(late bool) eosTxn {
		t.Helper()
		z := rng.IntN(2)
		other := 1 - z
		x := freeze(z, map[bool]string{false: "zombie thawed early", true: "zombie thawed late"}[late])
		frozeAt := time.Now()
		if late {
			progress(fmt.Sprintf("%s to take over all tasks from the frozen %s", names[other], names[z]), 1, nil, other)
			e.waitFor("the broker to abort the frozen transaction at its timeout", func() (bool, error) {
				d, err := eosDescribeTxn(e, adm, x.id)
				return d.ProducerEpoch != x.epoch, err
			})
		} else {
			e.waitFor(fmt.Sprintf("%s to be assigned all tasks of the frozen %s", names[other], names[z]), func() (bool, error) {
				if err := alive(other); err != nil {
					return false, err
				}
				g := e.c.Kfake().GroupInfo(appID)
				return g != nil && g.State == "Stable" && len(g.Members) == 1 && g.NumAssigned() == 6, nil
			})
		}
		d, err := eosDescribeTxn(e, adm, x.id)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: frozen at %s, thawed %v later; frozen transaction open at the thaw: %v",
			x, frozeAt.Format("15:04:05.000"), time.Since(frozeAt).Round(time.Millisecond), d.ProducerEpoch == x.epoch && d.State == "Ongoing")
		mark := len(cur[z].out.String())
		if err := syscall.Kill(cur[z].cmd.Process.Pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		thawedAt := time.Now()
		progress(fmt.Sprintf("the thawed %s to rejoin", names[z]), 2, func() (bool, error) {
			// A session timeout, a rebalance and a restoration take a
			// few seconds; ten mean the zombie is stuck.
			if d := time.Since(thawedAt); d > 10*time.Second {
				return false, fmt.Errorf("the thawed %s has not rejoined and processed %v after the thaw", names[z], d.Round(time.Millisecond))
			}
			return strings.Contains(cur[z].out.String()[mark:], `msg="tasks assigned"`), nil
		}, 0, 1)
		t.Logf("%s: rejoined, and both committed on each partition %v after the thaw", x, time.Since(thawedAt).Round(time.Millisecond))
		return x
	}

	if err := in.produce(e, 200); err != nil {
		t.Fatal(err)
	}
	start(0)
	start(1)
	stopInput := eosOnce(in.background(t, e))
	defer stopInput()
	progress("both instances to process", 2, nil, 0, 1)
	early := zombie(false)
	late := zombie(true)

	// A crash mid-transaction: frozen first, so the open transaction can
	// be identified, then killed and restarted on its state directory.
	v := rng.IntN(2)
	killed := freeze(v, "killed")
	killChild(t, cur[v])
	killedAt := time.Now()
	start(v)
	progress(fmt.Sprintf("the restarted %s to process", names[v]), 2, nil, 0, 1)
	t.Logf("%s: killed at %s; restarted, and both committed on each partition %v later",
		killed, killedAt.Format("15:04:05.000"), time.Since(killedAt).Round(time.Millisecond))
	stopInput()

	e.e2eWaitCommittedAlive(appID, topics, func() error { return alive(0, 1) })
	for i := range cur {
		terminateChild(t, cur[i])
	}
	for i := range cur {
		e.waitFor("child "+names[i]+" to shut down", func() (bool, error) {
			ok, err := cur[i].exited()
			if ok && err != nil {
				return false, fmt.Errorf("child %s failed (%v):\n%s", names[i], err, cur[i].out.tail(60))
			}
			return ok, nil
		})
	}

	words, truth, lines := in.snapshot()
	out := eosCheckOutput(e, spec, changelog, words, truth)
	txns := []eosTxn{early, late, killed}
	held := eosCheckInvisible(e, []string{spec.Output, spec.Counts, repartition, changelog}, txns)
	for i, x := range txns {
		if held[i] == 0 {
			t.Errorf("%s had no records: it was not frozen mid-transaction", x)
		}
	}
	t.Logf("seed %d: %d input lines, %d words, %d output records; never visible: %d, %d and %d records of the transactions of the %s, the %s and the %s",
		seed, lines, len(words), len(out), held[0], held[1], held[2], early, late, killed)
}

// eosDescribeTxn describes the transactional id's current transaction.
func eosDescribeTxn(e *e2eEnv, adm *kadm.Client, id string) (kadm.DescribedTransaction, error) {
	ds, err := adm.DescribeTransactions(e.ctx, id)
	if err != nil {
		return kadm.DescribedTransaction{}, err
	}
	d, ok := ds[id]
	if !ok {
		return d, fmt.Errorf("transactional id %s not described", id)
	}
	return d, d.Err
}

// eosCheckOutput checks crashTopology's committed output under
// exactly-once: each input word exactly once in spec.Output, the count
// updates of spec.Counts (checkCountUpdates), and the changelog ending at
// the final counts. It returns the words output.
func eosCheckOutput(e *e2eEnv, spec crashChildSpec, changelog string, words []string, truth map[string]int64) []*kgo.Record {
	e.t.Helper()
	out := e.readAll(spec.Output)
	checkWordsExactlyOnce(e.t, out, words)
	checkCountUpdates(e.t, e.readAll(spec.Counts), truth)
	if logged, final := e.e2eFinalCounts(changelog), e.e2eFinalCounts(spec.Counts); !maps.Equal(logged, final) {
		e.t.Errorf("the changelog ends at counts %v, the output at %v", logged, final)
	}
	return out
}

// eosCheckInvisible checks that no committed record of topics belongs to
// one of txns, and returns how many records of each the topics hold
// (read_uncommitted).
func eosCheckInvisible(e *e2eEnv, topics []string, txns []eosTxn) (held []int) {
	e.t.Helper()
	held = make([]int, len(txns))
	for _, topic := range topics {
		for _, r := range e.readAll(topic) {
			for _, x := range txns {
				if r.ProducerID == x.pid && r.ProducerEpoch == x.epoch {
					e.t.Errorf("%s-%d@%d (%q) of the aborted transaction of the %s is committed", topic, r.Partition, r.Offset, r.Value, x)
				}
			}
		}
		for _, r := range e.readUncommitted(topic) {
			for i, x := range txns {
				if r.ProducerID == x.pid && r.ProducerEpoch == x.epoch {
					held[i]++
				}
			}
		}
	}
	return held
}

// eosFault is a broker-side fault of TestAppEOSBrokerFaults.
type eosFault struct {
	name string
	f    kfake.Fault
	// fatal faults fail the app under LogAndFail, at most once per hit:
	// a hit on records whose transaction is being aborted anyway fails
	// nothing.
	fatal bool
	hs    []*kfake.FaultHandle // the fault installed, maybe several times
}

// install installs the fault (again).
func (f *eosFault) install(kf *kfake.Cluster) { f.hs = append(f.hs, kf.Fault(f.f)) }

// hits returns how many requests the fault has answered.
func (f *eosFault) hits() int {
	n := 0
	for _, h := range f.hs {
		n += h.Hits()
	}
	return n
}

func (f *eosFault) remove() {
	for _, h := range f.hs {
		h.Remove()
	}
}

// eosEveryNth returns a kfake Fault.When that accepts every nth request
// that pred accepts, from a seeded start. It counts requests, not the
// partitions in them: all of an accepted request's partitions are
// faulted. It runs on the cluster's goroutine only.
func eosEveryNth(rng *rand.Rand, n int, pred func(kmsg.Request) bool) func(kmsg.Request) bool {
	count := rng.IntN(n)
	var (
		last   kmsg.Request
		lastOK bool
	)
	return func(req kmsg.Request) bool {
		if req != last {
			last, lastOK = req, false
			if pred == nil || pred(req) {
				count++
				lastOK = count%n == 0
			}
		}
		return lastOK
	}
}

// eosTxnProduce accepts produce requests of transactional producers (the
// application's, not the test's).
func eosTxnProduce(req kmsg.Request) bool {
	p, ok := req.(*kmsg.ProduceRequest)
	return ok && p.TransactionID != nil
}

// TestAppEOSBrokerFaults runs crashTopology in process under exactly-once
// on a three-broker cluster whose brokers fail the application's
// transactional requests now and then (seeded): produce requests with
// retriable errors (rejected, or appended and answered as timed out),
// with TRANSACTION_ABORTABLE (the transaction must abort) and with
// INVALID_RECORD, which fails the app under LogAndFail (it is then
// restarted; the fault is installed again until it has failed the app
// once, since a hit on an aborting transaction fails nothing); EndTxn
// with retriable, abortable and fencing errors (the app then rejoins with
// a new producer); TxnOffsetCommit with retriable and abortable errors;
// and, on the protocol before KIP-890 part 2, AddPartitionsToTxn and
// AddOffsetsToTxn. Meanwhile the group and transaction coordinators move
// (before some EndTxn and TxnOffsetCommit requests) and so do the leaders
// of partitions produced to. Every fault must fire; the app must keep
// running, or fail with the production error, its committed output then
// matching its committed input offsets exactly; and at the end every word
// must be in the output once and the counts exact. Set
// RUNNEL_BROKER_FAULTS_SEED to replay a run.
func TestAppEOSBrokerFaults(t *testing.T) {
	skipShort(t)
	rng, seed := seededRand(t, "RUNNEL_BROKER_FAULTS_SEED")
	for _, mode := range []struct {
		name string
		opts []kgo.Opt
		// pre890 is the protocol before KIP-890 part 2: partitions and
		// the group are added to transactions explicitly.
		pre890 bool
	}{
		{name: "kip890"},
		{name: "pre-kip890", opts: []kgo.Opt{kgo.MaxVersions(kversion.V3_9_0())}, pre890: true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, rng.Uint64()))
			testEOSBrokerFaults(t, rng, mode.opts, mode.pre890)
		})
	}
}

func testEOSBrokerFaults(t *testing.T, rng *rand.Rand, opts []kgo.Opt, pre890 bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	e := &e2eEnv{t: t, ctx: ctx, c: kafkatest.StartT(t, kfake.NumBrokers(3))}
	const appID = "faults-e2e"
	spec := crashChildSpec{AppID: appID, Input: "lines", Output: "words", Counts: "counts"}
	repartition := appID + "-counts-repartition"
	changelog := appID + "-counts-changelog"
	e.crashTopics(spec)
	in := e.newChaosInput(spec.Input)
	if err := in.produce(e, 200); err != nil {
		t.Fatal(err)
	}

	kf := e.c.Kfake()
	every := func(lo, hi int, pred func(kmsg.Request) bool) func(kmsg.Request) bool {
		return eosEveryNth(rng, lo+rng.IntN(hi-lo+1), pred)
	}
	faults := []*eosFault{
		// Retriable: the client retries (a timed-out append is retried
		// too, and deduplicated by its sequence number).
		{name: "Produce NOT_LEADER_FOR_PARTITION", f: kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotLeaderForPartition, Count: -1, When: every(15, 30, eosTxnProduce)}},
		{name: "Produce REQUEST_TIMED_OUT (appended)", f: kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: -1, When: every(15, 30, eosTxnProduce)}},
		// The transaction must abort.
		{name: "Produce TRANSACTION_ABORTABLE", f: kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.TransactionAbortable, Count: -1, When: every(60, 100, eosTxnProduce)}},
		// The record is refused: under LogAndFail the app fails.
		{name: "Produce INVALID_RECORD", f: kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: spec.Output, Err: kerr.InvalidRecord, Count: 1, When: every(50, 100, eosTxnProduce)}, fatal: true},
		{name: "EndTxn COORDINATOR_LOAD_IN_PROGRESS", f: kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorLoadInProgress, Count: -1, When: every(6, 10, nil)}},
		{name: "EndTxn UNKNOWN_SERVER_ERROR", f: kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.UnknownServerError, Count: -1, When: every(6, 10, nil)}},
		{name: "EndTxn TRANSACTION_ABORTABLE", f: kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.TransactionAbortable, Count: -1, When: every(6, 10, nil)}},
		// The producer cannot go on: the app rejoins with a new one.
		{name: "EndTxn PRODUCER_FENCED", f: kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.ProducerFenced, Count: -1, When: every(10, 20, nil)}},
		{name: "TxnOffsetCommit COORDINATOR_LOAD_IN_PROGRESS", f: kfake.Fault{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.CoordinatorLoadInProgress, Count: -1, When: every(6, 10, nil)}},
		{name: "TxnOffsetCommit REBALANCE_IN_PROGRESS", f: kfake.Fault{Keys: []kmsg.Key{kmsg.TxnOffsetCommit}, Err: kerr.RebalanceInProgress, Count: -1, When: every(6, 10, nil)}},
	}
	if pre890 {
		faults = append(faults,
			&eosFault{name: "AddPartitionsToTxn CONCURRENT_TRANSACTIONS", f: kfake.Fault{Keys: []kmsg.Key{kmsg.AddPartitionsToTxn}, Err: kerr.ConcurrentTransactions, Count: -1, When: every(6, 10, nil)}},
			&eosFault{name: "AddOffsetsToTxn COORDINATOR_LOAD_IN_PROGRESS", f: kfake.Fault{Keys: []kmsg.Key{kmsg.AddOffsetsToTxn}, Err: kerr.CoordinatorLoadInProgress, Count: -1, When: every(6, 10, nil)}},
		)
	}
	for _, f := range faults {
		f.install(kf)
	}
	// Moves, by observing controls (they never answer a request): the
	// coordinators move before every few EndTxn and TxnOffsetCommit
	// requests are handled, partition leaders before some produce
	// requests.
	var (
		moving                  atomic.Bool
		coordMoves, leaderMoves atomic.Int64
		endTxnMove, offsetsMove = every(5, 9, nil), every(5, 9, nil)
		produceMove             = every(20, 40, eosTxnProduce)
		moveTo                  = rng.Int32N(3)
	)
	moving.Store(true)
	kf.ControlKey(int16(kmsg.EndTxn), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if moving.Load() && endTxnMove(req) {
			kf.RehashCoordinators()
			coordMoves.Add(1)
		}
		return nil, nil, false
	})
	kf.ControlKey(int16(kmsg.TxnOffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if moving.Load() && offsetsMove(req) {
			kf.RehashCoordinators()
			coordMoves.Add(1)
		}
		return nil, nil, false
	})
	kf.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !moving.Load() || !produceMove(req) {
			return nil, nil, false
		}
		p := req.(*kmsg.ProduceRequest)
		if len(p.Topics) == 0 || len(p.Topics[0].Partitions) == 0 {
			return nil, nil, false
		}
		topic := p.Topics[0].Topic
		if ti := kf.TopicIDInfo(p.Topics[0].TopicID); topic == "" && ti != nil { // produce v13+ names topics by id
			topic = ti.Topic
		}
		if topic == spec.Input || topic == repartition {
			// Only the partitions the app does not consume move: after
			// a move, kfake answers OffsetForLeaderEpoch for the
			// previous epoch with an undefined end offset until a batch
			// is written in the new epoch, which a consumer takes for
			// log truncation and rewinds to the log start.
			return nil, nil, false
		}
		moveTo = (moveTo + 1) % 3
		if err := kf.MoveTopicPartition(topic, p.Topics[0].Partitions[0].Partition, moveTo); err == nil {
			leaderMoves.Add(1)
		}
		return nil, nil, false
	})
	stopFaults := func() {
		moving.Store(false)
		for _, f := range faults {
			f.remove()
		}
	}
	defer stopFaults()

	b := stream.NewBuilder()
	crashTopology(b, spec)
	cfg, logs := e.config(appID)
	cfg.Guarantee = stream.ExactlyOnce
	events := &e2eEvents{}
	cfg.EventListener = events.listener()
	cfg.InstanceID = "i0"
	cfg.RepartitionPurgeInterval = time.Hour // eosCheckPrefix reads the repartition topic whole
	cfg.ClientOpts = append(cfg.ClientOpts, opts...)
	var run *e2eRun
	starts := 0
	startApp := func() {
		app, err := stream.NewApp(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		run = e.start(app)
		starts++
	}
	// failed handles an app that exited: only a fatal fault may stop it,
	// with the production error, and its committed output must match its
	// committed input. It is restarted.
	var failures []string
	failed := func() error {
		exited, err := run.exitedEarly()
		if !exited {
			return nil
		}
		if !errors.Is(err, kerr.InvalidRecord) || !strings.Contains(err.Error(), "producing to "+spec.Output) {
			return fmt.Errorf("app exited (%v), want no exit or an INVALID_RECORD error producing to %s", err, spec.Output)
		}
		failures = append(failures, err.Error())
		eosCheckPrefix(e, appID, spec, repartition, in)
		startApp()
		return nil
	}
	startApp()
	stopInput := eosOnce(in.background(t, e))
	defer stopInput()
	fired := func() string {
		var s []string
		for _, f := range faults {
			s = append(s, fmt.Sprintf("%s ×%d", f.name, f.hits()))
		}
		return fmt.Sprintf("%d coordinator moves, %d leader moves; faults: %s", coordMoves.Load(), leaderMoves.Load(), strings.Join(s, ", "))
	}
	// Run until every fault has fired, the app has failed and things
	// moved a few times.
	if err := kafkatest.WaitFor(e.ctx, func() (bool, error) {
		if err := failed(); err != nil {
			return false, err
		}
		done := len(failures) > 0
		for _, f := range faults {
			if f.hits() == 0 {
				done = false
			} else if f.fatal && len(failures) == 0 && f.hs[len(f.hs)-1].Hits() > 0 {
				f.install(kf) // it hit an aborting transaction (or the failure is on its way)
			}
		}
		return done && coordMoves.Load() >= 3 && leaderMoves.Load() >= 3, nil
	}); err != nil {
		t.Fatalf("waiting for every fault to fire: %v\n%s", err, fired())
	}
	stopFaults()
	stopInput()
	e.e2eWaitCommittedAlive(appID, []string{spec.Input, repartition}, failed)
	if err := run.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	eosCheckPrefix(e, appID, spec, repartition, in)
	words, truth, lines := in.snapshot()
	out := eosCheckOutput(e, spec, changelog, words, truth)

	fatal := 0
	for _, f := range faults {
		if f.fatal {
			fatal += f.hits()
		}
	}
	if len(failures) > fatal {
		t.Errorf("the app failed %d times, more than the %d fatal faults", len(failures), fatal)
	}
	aborted := len(snapshot(events, &events.aborts))
	rejoined := strings.Count(logs.String(), "rejoining with a new producer")
	t.Logf("%d input lines, %d words, %d output records; %d app runs, failures %q; %d aborted transactions, %d rejoins; %s",
		lines, len(words), len(out), starts, failures, aborted, rejoined, fired())
}

// eosCheckPrefix checks, while the app is not running, that its committed
// output is exactly what its committed input offsets produce: the words of
// the input lines below the committed offsets, each once, and for each
// count key, the number of repartition records below the committed
// offsets.
func eosCheckPrefix(e *e2eEnv, group string, spec crashChildSpec, repartition string, in *chaosInput) {
	t := e.t
	t.Helper()
	offs := e.committed(group, spec.Input)
	in.mu.Lock()
	want := map[string]int{}
	for _, r := range in.recs {
		if r.Offset < offs[r.Partition] {
			for _, w := range strings.Fields(string(r.Value)) {
				want[w]++
			}
		}
	}
	in.mu.Unlock()
	got := map[string]int{}
	for _, r := range e.readAll(spec.Output) {
		got[string(r.Value)]++
	}
	if !maps.Equal(got, want) {
		bad := 0
		for w := range maps.Keys(got) {
			if got[w] != want[w] {
				bad++
			}
		}
		for w := range maps.Keys(want) {
			if got[w] == 0 {
				bad++
			}
		}
		t.Errorf("committed output of %d words differs from the %d words below the committed input offsets %v in %d words", len(got), len(want), offs, bad)
	}

	roffs := e.committed(group, repartition)
	counted := map[string]int64{}
	for _, r := range e.readAll(repartition) {
		if r.Offset < roffs[r.Partition] {
			counted[string(r.Key)]++
		}
	}
	final := e.e2eFinalCounts(spec.Counts)
	var diff []string
	for _, k := range slices.Sorted(maps.Keys(counted)) {
		if final[k] != counted[k] {
			diff = append(diff, fmt.Sprintf("%s %d (want %d)", k, final[k], counted[k]))
		}
	}
	if len(diff) > 0 || len(final) != len(counted) {
		t.Errorf("committed counts of %d keys (want %d) differ from the repartition records below the committed offsets %v: %s",
			len(final), len(counted), roffs, strings.Join(diff[:min(len(diff), 5)], ", "))
	}
}

// eosOnce returns a function that calls stop once, however often it is
// called, so that a test can both stop its input early and defer it.
func eosOnce(stop func()) func() {
	var once sync.Once
	return func() { once.Do(stop) }
}
