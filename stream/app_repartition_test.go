package stream_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAppRepartitionEndToEnd: records re-keyed and sent through a
// repartition topic reach the downstream sub-topology; the repartition
// topic is created with the right partition count and infinite retention,
// and its consumed records are purged after commits.
func TestAppRepartitionEndToEnd(t *testing.T) {
	skipShort(t)
	e := newE2E(t, 45*time.Second)
	e.topic("in", 2)
	e.topic("out", 2)
	const n = 200
	for i := range n {
		e.produce(&kgo.Record{Topic: "in", Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("user-%d", i%7))})
	}
	b := stream.NewBuilder()
	src := stream.From(b, "in", serde.String, serde.String)
	byUser := stream.SelectKey(src, func(_, v string) string { return v })
	repartitioned := byUser.Repartition(serde.String, serde.String, stream.Named("by-user"), stream.WithPartitions(3))
	stream.MapValues(repartitioned, strings.ToUpper).To("out", serde.String, serde.String)
	cfg, _ := e.config("repartition-e2e")
	cfg.RepartitionPurgeInterval = 50 * time.Millisecond
	app, err := stream.NewApp(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := e.start(app)
	e.waitFor("all records through the repartition topic", func() (bool, error) {
		return len(e.readAll("out")) >= n, nil
	}, run)

	adm := kadm.NewClient(e.client(t))
	const topic = "repartition-e2e-by-user-repartition"
	e.waitFor("the repartition topic to be purged", func() (bool, error) {
		starts, err := adm.ListStartOffsets(e.ctx, topic)
		if err != nil {
			return false, err
		}
		var purged int64
		starts.Each(func(o kadm.ListedOffset) { purged += o.Offset })
		return purged > 0, nil
	}, run)
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}

	tds, err := adm.ListTopics(e.ctx, topic)
	if err != nil || tds[topic].Err != nil {
		t.Fatalf("listing %s: %v %v", topic, err, tds[topic].Err)
	}
	if got := len(tds[topic].Partitions); got != 3 {
		t.Errorf("%s has %d partitions, want 3 (WithPartitions)", topic, got)
	}
	cfgs, err := adm.DescribeTopicConfigs(e.ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	retention := ""
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" && c.Value != nil {
			retention = *c.Value
		}
	}
	if retention != "-1" {
		t.Errorf("%s retention.ms = %q, want -1", topic, retention)
	}

	out := e.readAll("out")
	perUser := map[string]int{}
	for _, r := range out {
		if !strings.HasPrefix(string(r.Value), "USER-") || string(r.Value) != strings.ToUpper(string(r.Key)) {
			t.Fatalf("output record %s=%s: want key user-N and its upper-cased value", r.Key, r.Value)
		}
		perUser[string(r.Key)]++
	}
	users := make([]string, 0, len(perUser))
	for u, c := range perUser {
		users = append(users, u)
		if c < n/7 {
			t.Errorf("user %s: %d records, want at least %d", u, c, n/7)
		}
	}
	slices.Sort(users)
	if len(users) != 7 {
		t.Errorf("users %v, want 7", users)
	}
}
