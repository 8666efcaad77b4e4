package devbroker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/runnel-dev/runnel/devbroker"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A cluster with one topic, reached by a franz-go client that produces a
// record and reads it back.
func Example() {
	broker, err := devbroker.Start(devbroker.Config{Topics: map[string]int32{"greetings": 1}})
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()

	cl, err := kgo.NewClient(broker.ClientOpts(kgo.ConsumeTopics("greetings"))...)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close() // before the broker's Close, deferred earlier

	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "greetings", Value: []byte("hello")}).FirstErr(); err != nil {
		log.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		log.Fatal(err)
	}
	fs.EachRecord(func(r *kgo.Record) { fmt.Printf("%s: %s\n", r.Topic, r.Value) })
	// Output: greetings: hello
}
