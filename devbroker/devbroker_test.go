package devbroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/clientconfig"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	c, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// partitions returns the partition count of each topic the admin client
// sees.
func partitions(t *testing.T, ctx context.Context, c *Cluster) map[string]int {
	t.Helper()
	tds, err := c.Admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, td := range tds {
		out[td.Topic] = len(td.Partitions)
	}
	return out
}

func TestStartBrokersTopics(t *testing.T) {
	ctx := testCtx(t)
	c := start(t, Config{NumBrokers: 3, Topics: map[string]int32{"a": 2, "b": 5}})
	addrs := c.Brokers()
	if len(addrs) != 3 {
		t.Fatalf("Brokers() = %v, want 3 addresses", addrs)
	}
	for _, a := range addrs {
		if !strings.HasPrefix(a, "127.0.0.1:") || strings.HasSuffix(a, ":0") {
			t.Errorf("address %q, want 127.0.0.1:<port>", a)
		}
	}
	if got := partitions(t, ctx, c); got["a"] != 2 || got["b"] != 5 {
		t.Fatalf("topics %v, want a:2 b:5", got)
	}
	c.Close()
	c.Close() // idempotent
}

func TestCreateTopic(t *testing.T) {
	ctx := testCtx(t)
	c := start(t, Config{})
	if err := c.CreateTopic(ctx, "c", 4, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateTopic(ctx, "c", 4, nil); !errors.Is(err, kerr.TopicAlreadyExists) || !strings.Contains(err.Error(), `"c"`) {
		t.Fatalf("second CreateTopic: got %v, want TopicAlreadyExists naming the topic", err)
	}
	if got := partitions(t, ctx, c)["c"]; got != 4 {
		t.Fatalf("topic c has %d partitions, want 4", got)
	}
	if c.Kfake() == nil {
		t.Error("Kfake() = nil")
	}
}

func TestDataDirKeepsTopics(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	c := start(t, Config{DataDir: dir, Topics: map[string]int32{"kept": 3}})
	c.Close()
	c = start(t, Config{DataDir: dir})
	if got := partitions(t, ctx, c)["kept"]; got != 3 {
		t.Fatalf("after restart on DataDir, topic kept has %d partitions, want 3", got)
	}
}

func TestSASL(t *testing.T) {
	ctx := testCtx(t)
	c := start(t, Config{
		Topics: map[string]int32{"t": 1},
		SASL:   []User{{Mechanism: "SCRAM-SHA-256", Name: "admin", Password: "pw"}, {Mechanism: "PLAIN", Name: "app", Password: "app-pw"}},
	})
	// The admin client logs in as the first user.
	if got := partitions(t, ctx, c)["t"]; got != 1 {
		t.Fatalf("topic t has %d partitions, want 1", got)
	}

	client := func(user, pass string) *kgo.Client {
		m, err := clientconfig.SASLMechanism("PLAIN", user, pass)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.SASL(m))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	if err := client("app", "app-pw").ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce as the second user: %v", err)
	}
	// kfake closes the connection of a failed login instead of answering
	// SASL_AUTHENTICATION_FAILED, so the client sees EOF.
	if err := client("app", "wrong").Ping(ctx); err == nil {
		t.Fatal("ping with a wrong password succeeded")
	}

	if _, err := Start(Config{SASL: []User{{Mechanism: "GSSAPI", Name: "k"}}}); err == nil || !strings.Contains(err.Error(), `"GSSAPI" is not supported`) {
		t.Fatalf("Start with GSSAPI user: got %v, want an error naming the mechanism", err)
	}
}
