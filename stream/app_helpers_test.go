package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/stream"
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

// outputValues returns the values of topic's records.
func e2eValues(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// committedSum returns the sum of group's committed offsets on topic.
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
