package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func values(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func TestStartClose(t *testing.T) {
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	brokers := c.Brokers()
	if len(brokers) != 1 || !strings.HasPrefix(brokers[0], "127.0.0.1:") || strings.HasSuffix(brokers[0], ":0") {
		t.Errorf("Brokers() = %v, want one 127.0.0.1:<port>", brokers)
	}
	if c.Kfake() == nil {
		t.Error("Kfake() = nil")
	}
	c.Close()
	c.Close() // idempotent
}

func TestCreateProduceReadCommitted(t *testing.T) {
	ctx := testCtx(t)
	c := StartT(t)
	if err := c.CreateTopic(ctx, "in", 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "in", 3, nil); !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("second CreateTopic: got %v, want TopicAlreadyExists", err)
	}

	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, &kgo.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := c.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadCommitted(ctx, "in", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("ReadCommitted returned %d records, want 10: %v", len(got), values(got))
	}

	// Not enough records: the error says how many were read.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	got, err = c.ReadCommitted(short, "in", 11)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "read 10 of 11") {
		t.Fatalf("ReadCommitted(11): got %v, want deadline error saying 10 of 11", err)
	}
	if len(got) != 10 {
		t.Fatalf("ReadCommitted(11) returned %d records, want 10", len(got))
	}
}

func TestProduceToPartitions(t *testing.T) {
	ctx := testCtx(t)
	c := StartT(t)
	if err := c.CreateTopic(ctx, "p", 4, nil); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range 8 {
		recs = append(recs, &kgo.Record{Topic: "p", Partition: int32(i % 4), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := c.ProduceToPartitions(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadAll(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0", "4", "1", "5", "2", "6", "3", "7"} // by partition, then offset
	if fmt.Sprint(values(got)) != fmt.Sprint(want) {
		t.Fatalf("ReadAll = %v, want %v", values(got), want)
	}
	for _, r := range got {
		var v int32
		fmt.Sscan(string(r.Value), &v)
		if r.Partition != v%4 {
			t.Errorf("record %s in partition %d, want %d", r.Value, r.Partition, v%4)
		}
	}
}

func TestReadAllEmpty(t *testing.T) {
	ctx := testCtx(t)
	c := StartT(t)
	if err := c.CreateTopic(ctx, "empty", 2, nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadAll(ctx, "empty")
	if err != nil || len(got) != 0 {
		t.Fatalf("ReadAll(empty) = %v, %v; want nothing", values(got), err)
	}
	if _, err := c.ReadAll(ctx, "missing"); !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("ReadAll(missing): got %v, want UnknownTopicOrPartition", err)
	}
}

// TestReadAllTransactional checks that ReadAll returns only committed records
// and terminates although every partition ends with a transaction marker, and
// that it does not wait for a transaction still open.
func TestReadAllTransactional(t *testing.T) {
	ctx := testCtx(t)
	c := StartT(t)
	const topic = "txn"
	if err := c.CreateTopic(ctx, topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.Brokers()...),
		kgo.TransactionalID("kafkatest-txn"),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	txn := func(commit kgo.TransactionEndTry, end bool, vals ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(v)}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if !end {
			return
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	txn(kgo.TryCommit, true, "c1", "c2", "c3")
	txn(kgo.TryAbort, true, "a1", "a2")
	txn(kgo.TryCommit, true, "c4", "c5")
	txn(kgo.TryCommit, false, "open1", "open2") // left open while reading

	got, err := c.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"c1", "c3", "c4", "c2", "c5"} // partition 0, then 1
	if fmt.Sprint(values(got)) != fmt.Sprint(want) {
		t.Fatalf("ReadAll = %v, want %v", values(got), want)
	}
	got, err = c.ReadAllUncommitted(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"c1", "c3", "a1", "c4", "open1", "c2", "a2", "c5", "open2"} // aborted and open ones too
	if fmt.Sprint(values(got)) != fmt.Sprint(want) {
		t.Fatalf("ReadAllUncommitted = %v, want %v", values(got), want)
	}

	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	got, err = c.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"c1", "c3", "c4", "open1", "c2", "c5", "open2"}
	if fmt.Sprint(values(got)) != fmt.Sprint(want) {
		t.Fatalf("ReadAll after commit = %v, want %v", values(got), want)
	}
	committed, err := c.ReadCommitted(ctx, topic, 7)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range committed {
		if strings.HasPrefix(string(r.Value), "a") {
			t.Errorf("ReadCommitted returned aborted record %s", r.Value)
		}
	}
}

func TestCommittedOffsets(t *testing.T) {
	ctx := testCtx(t)
	c := StartT(t)
	const topic, group = "offs", "g"
	if err := c.CreateTopic(ctx, topic, 2, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ProduceToPartitions(ctx,
		&kgo.Record{Topic: topic, Partition: 0, Value: []byte("a")},
		&kgo.Record{Topic: topic, Partition: 0, Value: []byte("b")},
		&kgo.Record{Topic: topic, Partition: 1, Value: []byte("c")},
	); err != nil {
		t.Fatal(err)
	}
	if got, err := c.CommittedOffsets(ctx, group, topic); err != nil || len(got) != 0 {
		t.Fatalf("CommittedOffsets before commit = %v, %v; want none", got, err)
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.Brokers()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(time.Second),
		kgo.HeartbeatInterval(100*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for n := 0; n < 3; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := c.CommittedOffsets(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int32]int64{0: 2, 1: 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("CommittedOffsets = %v, want %v", got, want)
	}
}

func TestWaitFor(t *testing.T) {
	ctx := testCtx(t)
	calls := 0
	if err := WaitFor(ctx, func() (bool, error) { calls++; return calls == 3, nil }); err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if calls != 3 {
		t.Fatalf("cond called %d times, want 3", calls)
	}

	boom := errors.New("boom")
	if err := WaitFor(ctx, func() (bool, error) { return false, boom }); err != boom {
		t.Fatalf("WaitFor with failing cond: got %v, want %v", err, boom)
	}

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	err := WaitFor(short, func() (bool, error) { return false, nil })
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still false") {
		t.Fatalf("WaitFor timeout: got %v, want deadline error saying still false", err)
	}
}
