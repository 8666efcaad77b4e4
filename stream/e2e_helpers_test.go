package stream_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Helpers of the end-to-end App tests, which run applications against the
// embedded kfake cluster over loopback TCP. Their names start with e2e so
// they do not collide with the streamtest-based tests of this package.

// e2eGroupOpts make group membership changes fast: kfake's minimum session
// timeout is lowered to 100ms by kafkatest, and a short FetchMaxWait lets
// resumed partitions be fetched again quickly.
func e2eGroupOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SessionTimeout(time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
}

// skipShort skips a long end-to-end test (the crash, chaos, zombie and
// broker-fault suites, and others taking seconds) under go test -short,
// the quick local loop; the README's test command and .ci/run run them.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("long end-to-end test: skipped with -short")
	}
}

// e2eEnv is one end-to-end test: a cluster and a context bounding the test.
type e2eEnv struct {
	t   *testing.T
	ctx context.Context
	c   *kafkatest.Cluster
}

// newE2E starts a cluster; ctx ends after timeout (and with the test).
func newE2E(t *testing.T, timeout time.Duration) *e2eEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return &e2eEnv{t: t, ctx: ctx, c: kafkatest.StartT(t)}
}

func (e *e2eEnv) topic(name string, partitions int32) {
	e.t.Helper()
	if err := e.c.CreateTopic(e.ctx, name, partitions, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2eEnv) produce(recs ...*kgo.Record) {
	e.t.Helper()
	if err := e.c.Produce(e.ctx, recs...); err != nil {
		e.t.Fatal(err)
	}
}

// readAll returns every record of topic, by partition then offset.
func (e *e2eEnv) readAll(topic string) []*kgo.Record {
	e.t.Helper()
	recs, err := e.c.ReadAll(e.ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// config returns a Config for appID on the cluster with a 100ms commit
// interval, fast group settings and a logger whose output is printed if the
// test fails.
func (e *e2eEnv) config(appID string) (stream.Config, *e2eLog) {
	e.t.Helper()
	logs := &e2eLog{}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("logs of %s:\n%s", appID, logs.tail(150))
		}
	})
	return stream.Config{
		AppID:          appID,
		Brokers:        e.c.Brokers(),
		StateDir:       e.t.TempDir(),
		CommitInterval: 100 * time.Millisecond,
		ClientOpts:     e2eGroupOpts(),
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, logs
}

// e2eRun is an App running in its own goroutine.
type e2eRun struct {
	app    *stream.App
	cancel context.CancelFunc
	done   chan error // receives Run's result once
	err    error
	exited bool
}

// start runs app until stop (or the end of the test).
func (e *e2eEnv) start(app *stream.App) *e2eRun {
	ctx, cancel := context.WithCancel(e.ctx)
	r := &e2eRun{app: app, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- app.Run(ctx) }()
	e.t.Cleanup(func() { r.cancel(); r.wait(e.t, 30*time.Second) })
	return r
}

// exitedEarly returns Run's error if it has returned.
func (r *e2eRun) exitedEarly() (bool, error) {
	if r.exited {
		return true, r.err
	}
	select {
	case r.err = <-r.done:
		r.exited = true
		return true, r.err
	default:
		return false, nil
	}
}

// wait waits at most d for Run to return and returns its error.
func (r *e2eRun) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	if r.exited {
		return r.err
	}
	select {
	case r.err = <-r.done:
		r.exited = true
	case <-time.After(d):
		t.Fatalf("App.Run did not return within %v", d)
	}
	return r.err
}

// stop cancels Run's context and returns its result, failing the test if
// it takes longer than 10s.
func (r *e2eRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t, 10*time.Second)
}

// waitFor polls cond until it holds, failing the test when the env's
// deadline passes or an app in apps exits.
func (e *e2eEnv) waitFor(what string, cond func() (bool, error), apps ...*e2eRun) {
	e.t.Helper()
	err := kafkatest.WaitFor(e.ctx, func() (bool, error) {
		for _, a := range apps {
			if exited, err := a.exitedEarly(); exited {
				return false, fmt.Errorf("app exited early: %v", err)
			}
		}
		return cond()
	})
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// e2eValues returns the values of recs.
func e2eValues(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// committed returns group's committed offsets on topic, by partition.
func (e *e2eEnv) committed(group, topic string) map[int32]int64 {
	e.t.Helper()
	offs, err := e.c.CommittedOffsets(e.ctx, group, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return offs
}

// e2eStates records the transitions a state listener saw.
type e2eStates struct {
	mu    sync.Mutex
	trans []string
}

func (s *e2eStates) listener(old, new stream.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trans = append(s.trans, old.String()+"->"+new.String())
}

func (s *e2eStates) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.trans...)
}

// e2eLog is a log sink safe for concurrent use.
type e2eLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *e2eLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *e2eLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *e2eLog) tail(n int) string {
	lines := strings.Split(l.String(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... %d lines omitted", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// e2eMetric returns the value of the gauge or counter name whose labels
// include want (nil: any), or -1 when reg has no such metric.
func e2eMetric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// crashChildEnv carries a crashChildSpec (JSON) to the re-executed test
// binary; TestCrashChild runs only when it is set.
const crashChildEnv = "RUNNEL_CRASH_CHILD"

// crashChildReady is the line TestCrashChild prints once SIGTERM shuts it
// down cleanly.
const crashChildReady = "crash child: handling SIGTERM"

type crashChildSpec struct {
	Brokers       []string
	AppID         string
	Input, Output string
	// Counts receives a stateful branch: the count of words per (word
	// suffix, line key), kept in a store under StateDir, which outlives
	// the child processes.
	Counts   string
	StateDir string
	// CacheMaxBytes and PurgeInterval set Config.CacheMaxBytes and
	// Config.RepartitionPurgeInterval; zero means the default.
	CacheMaxBytes int64
	PurgeInterval time.Duration
	// Guarantee sets Config.Guarantee (default AtLeastOnce); InstanceID
	// Config.InstanceID.
	Guarantee  stream.Guarantee
	InstanceID string
	// CountByKey replaces the linesplit application with a count of the
	// input records per key (store "counts", no repartition) to Output.
	CountByKey bool
	// TransactionTimeout sets Config.TransactionTimeout; zero means the
	// default.
	TransactionTimeout time.Duration
}

// crashTopology adds the child's application to b: the words of each
// line to spec.Output, and their count per (word suffix, line key) in the
// store "counts" to spec.Counts. Tests that check the child's state run it
// in process too.
func crashTopology(b *stream.Builder, spec crashChildSpec) {
	lines := stream.From(b, spec.Input, serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields)
	words.To(spec.Output, serde.String, serde.String)
	groups := stream.GroupBy(words, func(k, w string) string { return w[len(w)-1:] + "-" + k }, serde.String, serde.String)
	groups.Count(stream.Materialized("counts")).ToStream().To(spec.Counts, serde.String, serde.Int64)
}

// crashChild is one run of the child process.
type crashChild struct {
	cmd  *exec.Cmd
	out  *e2eLog       // combined stdout and stderr
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

func (e *e2eEnv) startCrashChild(spec crashChildSpec) *crashChild {
	e.t.Helper()
	return startChild(e.ctx, e.t, spec)
}

// startChild starts a child process running spec. If still running, it
// is killed when tb ends; when ctx ends first (a failed test's context
// ends before its cleanups run), it dumps its goroutines into its log
// instead.
func startChild(ctx context.Context, tb testing.TB, spec crashChildSpec) *crashChild {
	tb.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	c := &crashChild{out: &e2eLog{}, done: make(chan struct{})}
	c.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+string(raw))
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	// A child still running when ctx ends (the test failed, or the child
	// hangs) dumps its goroutines into its log; one stopped with SIGSTOP
	// is continued first.
	c.cmd.Cancel = func() error {
		c.cmd.Process.Signal(syscall.SIGCONT)
		return c.cmd.Process.Signal(syscall.SIGQUIT)
	}
	if err := c.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(func() {
		if ctx.Err() == nil {
			c.cmd.Process.Kill()
		}
		select {
		case <-c.done: // killed, or dumped its goroutines as ctx ended
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// exited reports whether the child has exited, and how.
func (c *crashChild) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// killChild kills c with SIGKILL and waits until it is gone.
func killChild(t testing.TB, c *crashChild) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// terminateChild sends c SIGTERM, asking it to shut down cleanly, once it
// handles the signal: a child just started (for example one restarted
// while the other instance finished the input) would otherwise be killed
// by it before TestCrashChild installs its handler.
func terminateChild(t testing.TB, c *crashChild) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := kafkatest.WaitFor(ctx, func() (bool, error) {
		exited, _ := c.exited()
		return exited || strings.Contains(c.out.String(), crashChildReady), nil
	})
	if err != nil {
		t.Fatalf("waiting for the child to handle SIGTERM: %v\n%s", err, c.out.tail(50))
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// waitChildShutdown waits (as what) until c has exited, failing the test
// if it exits with an error: a failed exit is reported as name's, with
// the last tail lines of its log.
func (e *e2eEnv) waitChildShutdown(what, name string, c *crashChild, tail int) {
	e.t.Helper()
	e.waitFor(what, func() (bool, error) {
		ok, err := c.exited()
		if ok && err != nil {
			if errors.As(err, new(*exec.ExitError)) {
				return false, fmt.Errorf("%s failed (%v):\n%s", name, err, c.out.tail(tail))
			}
			return false, err
		}
		return ok, nil
	})
}

// crashTopics creates the input, output and counts topics of spec, with
// three partitions each.
func (e *e2eEnv) crashTopics(spec crashChildSpec) {
	e.t.Helper()
	for _, topic := range []string{spec.Input, spec.Output, spec.Counts} {
		e.topic(topic, 3)
	}
}

// endOffsetSum returns the sum of topic's end offsets (high watermarks).
func endOffsetSum(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum, ends.Error()
}

// seededRand returns a random source seeded from the environment variable
// env (to replay a run) or the clock, and the seed, which is logged when
// the test fails.
func seededRand(t *testing.T, env string) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(env); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with %s=%d", env, seed)
		}
	})
	return rand.New(rand.NewPCG(seed, seed)), seed
}

// checkWordsDelivered checks, for at-least-once, that every input word is
// among the values of out, and returns how often each value occurs.
func checkWordsDelivered(t *testing.T, out []*kgo.Record, words []string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range out {
		got[string(r.Value)]++
	}
	missing := 0
	for _, w := range words {
		if got[w] == 0 {
			if missing < 10 {
				t.Errorf("word %s of the input is missing from the output", w)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d words lost", missing, len(words))
	}
	return got
}

// checkCountsAtLeast checks, for at-least-once, that final has a count for
// every key of truth and none below it, and returns by how much the counts
// exceed the truth in all.
func checkCountsAtLeast(t *testing.T, final, truth map[string]int64) (over int64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(truth)) {
		if final[k] < truth[k] {
			t.Errorf("count of %s is %d, below the true %d", k, final[k], truth[k])
		}
		over += final[k] - truth[k]
	}
	if len(final) != len(truth) {
		t.Errorf("counts for %d keys, want %d", len(final), len(truth))
	}
	return over
}

// checkWordsExactlyOnce checks that the values of out are the input words,
// each exactly once, and returns how many records are duplicates.
func checkWordsExactlyOnce(t *testing.T, out []*kgo.Record, words []string) (dups int) {
	t.Helper()
	got := checkWordsDelivered(t, out, words)
	want := make(map[string]bool, len(words))
	for _, w := range words {
		want[w] = true
	}
	reported := 0
	for _, w := range slices.Sorted(maps.Keys(got)) {
		n := got[w]
		switch {
		case !want[w]:
			t.Errorf("output %q is no input word", w)
		case n > 1:
			dups += n - 1
			if reported++; reported <= 10 {
				var where []string // which transactions wrote it
				for _, r := range out {
					if string(r.Value) == w {
						where = append(where, fmt.Sprintf("%d@%d by producer %d epoch %d", r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch))
					}
				}
				t.Errorf("word %s is in the output %d times: %s", w, n, strings.Join(where, ", "))
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d duplicates in the output of %d words", dups, len(words))
	}
	return dups
}

// checkCountUpdates checks, for exactly-once, the committed updates of a
// count topic against the true final counts: every key of truth has
// updates, all in one partition, and its counts in offset order are
// strictly increasing (the record cache may skip values, never repeat
// one), never above the truth, and end at the truth.
func checkCountUpdates(t *testing.T, recs []*kgo.Record, truth map[string]int64) {
	t.Helper()
	updates := map[string][]int64{}
	partition := map[string]int32{}
	errs := 0
	errorf := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, r := range recs { // by partition, then offset
		k := string(r.Key)
		if len(r.Value) != 8 {
			t.Fatalf("count of %q is %d bytes, want 8", k, len(r.Value))
		}
		if p, ok := partition[k]; ok && p != r.Partition {
			errorf("key %s has updates in partitions %d and %d", k, p, r.Partition)
		}
		partition[k] = r.Partition
		updates[k] = append(updates[k], int64(binary.BigEndian.Uint64(r.Value)))
	}
	for _, k := range slices.Sorted(maps.Keys(updates)) {
		seq, want := updates[k], truth[k]
		if want == 0 {
			errorf("key %s is counted but not in the input: %v", k, seq)
			continue
		}
		for i, n := range seq {
			if n > want || (i > 0 && n <= seq[i-1]) {
				errorf("key %s: update %d of %d is %d after %d (true count %d): %s", k, i, len(seq), n, seq[max(i-1, 0)], want, countsExcerpt(seq, i))
				break
			}
		}
		if last := seq[len(seq)-1]; last != want {
			errorf("key %s: last count %d, want %d", k, last, want)
		}
	}
	for k := range truth {
		if len(updates[k]) == 0 {
			errorf("key %s (true count %d) has no count", k, truth[k])
		}
	}
	if errs > 20 {
		t.Errorf("... %d count errors in all", errs)
	}
}

// countsExcerpt formats the updates around seq[i].
func countsExcerpt(seq []int64, i int) string {
	lo, hi := max(i-3, 0), min(i+4, len(seq))
	s := make([]string, 0, hi-lo)
	for j := lo; j < hi; j++ {
		s = append(s, strconv.FormatInt(seq[j], 10))
	}
	return fmt.Sprintf("...%s...", strings.Join(s, " "))
}

// readUncommitted returns the data records topic holds up to its high
// watermarks, read_uncommitted, by partition then offset.
func (e *e2eEnv) readUncommitted(topic string) []*kgo.Record {
	e.t.Helper()
	recs, err := e.c.ReadAllUncommitted(e.ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// chaosInput produces the lines of TestAppStateChaos and keeps what the
// application must make of them. It is safe for concurrent use.
type chaosInput struct {
	cl    *kgo.Client
	topic string

	mu    sync.Mutex
	lines int
	words []string
	// recs are the produced lines, with their partitions and offsets.
	recs []*kgo.Record
	// truth counts the words per (suffix, line key), as the child does.
	truth map[string]int64
}

// produce synchronously produces n lines of three words, suffixes a, b
// and c, keyed k0..k12.
func (in *chaosInput) produce(e *e2eEnv, n int) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		l := in.lines + i
		key := fmt.Sprintf("k%d", l%13)
		ws := []string{fmt.Sprintf("l%05d:a", l), fmt.Sprintf("l%05d:b", l), fmt.Sprintf("l%05d:c", l)}
		in.words = append(in.words, ws...)
		for _, w := range ws {
			in.truth[w[len(w)-1:]+"-"+key]++
		}
		recs[i] = &kgo.Record{Topic: in.topic, Key: []byte(key), Value: []byte(strings.Join(ws, " "))}
	}
	in.lines += n
	in.recs = append(in.recs, recs...)
	return in.cl.ProduceSync(e.ctx, recs...).FirstErr()
}

// background produces chunks of 5 lines every 10ms until stopped, so the
// children are busy whenever they are killed.
func (in *chaosInput) background(t *testing.T, e *e2eEnv) (stop func()) {
	return produceInBackground(t, func() error { return in.produce(e, 5) }, nil)
}

// snapshot returns the words, a copy of the truth and the number of lines
// produced so far.
func (in *chaosInput) snapshot() (words []string, truth map[string]int64, lines int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.words, maps.Clone(in.truth), in.lines
}

// newChaosInput returns a chaosInput producing to topic with a client
// without linger, closed when the test ends.
func (e *e2eEnv) newChaosInput(topic string) *chaosInput {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...), kgo.ProducerLinger(0))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &chaosInput{cl: cl, topic: topic, truth: map[string]int64{}}
}

// produceInBackground calls produce every 10ms in a goroutine, while more
// (if not nil) reports true, until produce fails (a test error) or stop
// is called; stop waits for the goroutine to end.
func produceInBackground(t *testing.T, produce func() error, more func() bool) (stop func()) {
	stopc, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for more == nil || more() {
			if err := produce(); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(stopc); <-done }
}

// contains reports whether the log holds s, without copying it.
func (l *e2eLog) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Contains(l.buf.Bytes(), []byte(s))
}

// chaosRun is one run of a child process of TestAppStateChaos.
type chaosRun struct {
	name  string // "A#2 (cache -1)": instance A, its third run, and its cache
	child *crashChild
}

// logRunsOnFailure logs, if the test fails, the exit status and the last
// tail lines of the log of every run in *runs as it is when the test ends.
func logRunsOnFailure(t *testing.T, runs *[]chaosRun, tail int) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range *runs {
				ok, err := r.child.exited()
				t.Logf("logs of child %s (exited %v: %v):\n%s", r.name, ok, err, r.child.out.tail(tail))
			}
		}
	})
}

// chaosRestoredRE matches the log line of a finished store restoration.
var chaosRestoredRE = regexp.MustCompile(`msg="restored store".* from=(\d+) to=(\d+) records=(\d+)`)

// e2eWordCount adds a word count of input to b, writing counts to output;
// its store and changelog are named "counts".
func e2eWordCount(b *stream.Builder, input, output string) {
	lines := stream.From(b, input, serde.String, serde.String)
	words := stream.FlatMapValues(lines, strings.Fields)
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, serde.String, serde.String)
	byWord.Count(stream.Materialized("counts")).ToStream().To(output, serde.String, serde.Int64)
}

// e2eCorpus produces n lines of words w0..w(vocab-1) to topic, starting at
// line first, and adds their counts to truth.
func (e *e2eEnv) e2eCorpus(topic string, first, n, vocab int, truth map[string]int64) {
	e.t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		l := first + i
		ws := []string{fmt.Sprintf("w%d", l%vocab), fmt.Sprintf("w%d", (l*7+3)%vocab), fmt.Sprintf("w%d", (l*13+5)%vocab)}
		for _, w := range ws {
			truth[w]++
		}
		recs[i] = &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "line-%d", l), Value: []byte(strings.Join(ws, " "))}
	}
	e.produce(recs...)
}

// e2eFinalCounts returns the last count of every word in the output topic
// (a word's updates are all in one partition, in order).
func (e *e2eEnv) e2eFinalCounts(topic string) map[string]int64 {
	e.t.Helper()
	final := map[string]int64{}
	for _, r := range e.readAll(topic) {
		if len(r.Value) != 8 {
			e.t.Fatalf("count of %q is %d bytes, want 8", r.Key, len(r.Value))
		}
		final[string(r.Key)] = int64(binary.BigEndian.Uint64(r.Value))
	}
	return final
}

// e2eWaitCommitted waits until the group has committed every record of
// the topics produced so far, in order: a topic's records must be
// committed before the (repartition) topics it feeds are checked. The
// target of a partition is one past its last data record: under
// exactly-once a transaction marker follows it, which committed offsets
// never pass.
func (e *e2eEnv) e2eWaitCommitted(group string, topics []string, apps ...*e2eRun) {
	e.t.Helper()
	e.e2eWaitCommittedAlive(group, topics, nil, apps...)
}

// e2eWaitCommittedAlive is e2eWaitCommitted that also fails as soon as
// alive, if not nil, returns an error (a child process has exited).
func (e *e2eEnv) e2eWaitCommittedAlive(group string, topics []string, alive func() error, apps ...*e2eRun) {
	e.t.Helper()
	for _, topic := range topics {
		ends := map[int32]int64{}
		for _, r := range e.readAll(topic) {
			ends[r.Partition] = r.Offset + 1
		}
		e.waitFor("all records of "+topic+" committed", func() (bool, error) {
			if alive != nil {
				if err := alive(); err != nil {
					return false, err
				}
			}
			offs, err := e.c.CommittedOffsets(e.ctx, group, topic)
			if err != nil {
				return false, err
			}
			for p, end := range ends {
				if offs[p] < end {
					return false, nil
				}
			}
			return true, nil
		}, apps...)
	}
}

// e2eWordCountTopics are the topics a word count app reads, in order.
func e2eWordCountTopics(appID string) []string {
	return []string{"lines", appID + "-counts-repartition"}
}

// e2eEndSum returns the sum of the end offsets of a topic.
func (e *e2eEnv) e2eEndSum(topic string) int64 {
	e.t.Helper()
	ends, err := kadm.NewClient(e.client(e.t)).ListEndOffsets(e.ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// restoreCounter is a state.RestoreListener that counts restored records.
type restoreCounter struct {
	mu       sync.Mutex
	restored int64
	starts   int
	ends     int
}

func (c *restoreCounter) OnRestoreStart(string, int32, string, int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts++
}

func (c *restoreCounter) OnBatchRestored(_ string, _ int32, _ string, _, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restored += n
}

func (c *restoreCounter) OnRestoreEnd(string, int32, string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ends++
}

func (c *restoreCounter) get() (restored int64, starts, ends int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restored, c.starts, c.ends
}

// runWordCount runs a word count app with the given state dir until all
// input is committed, then stops it cleanly; it returns the restore
// counts it saw.
func (e *e2eEnv) runWordCount(appID, stateDir string, opts ...func(*stream.Config)) *restoreCounter {
	e.t.Helper()
	b := stream.NewBuilder()
	e2eWordCount(b, "lines", "counts-out")
	cfg, _ := e.config(appID)
	cfg.StateDir = stateDir
	for _, o := range opts {
		o(&cfg)
	}
	rc := &restoreCounter{}
	cfg.RestoreListener = rc
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	run := e.start(app)
	e.e2eWaitCommitted(appID, e2eWordCountTopics(appID), run)
	if err := run.stop(e.t); err != nil {
		e.t.Fatalf("Run: %v", err)
	}
	return rc
}

// client returns a plain client on the env's cluster, closed with the test.
func (e *e2eEnv) client(t *testing.T) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.c.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
