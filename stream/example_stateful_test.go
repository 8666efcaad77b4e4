package stream_test

import (
	"fmt"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/stream/streamtest"
	"github.com/runnel-dev/runnel/topology"
)

// ExampleAggregate keeps per-customer order statistics: GroupBy re-keys the
// orders by customer (through a repartition topic) and Aggregate folds each
// customer's orders into a Stats value kept in the store "customer-stats".
func ExampleAggregate() {
	type Order struct {
		Customer string `json:"customer"`
		Amount   int64  `json:"amount"`
	}
	type Stats struct {
		Orders int64 `json:"orders"`
		Total  int64 `json:"total"`
	}
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", serde.String, serde.JSON[Order]()) // keyed by order id
	byCustomer := stream.GroupBy(orders, func(_ string, o Order) string { return o.Customer },
		serde.String, serde.JSON[Order](), stream.Named("orders-by-customer"))
	stats := stream.Aggregate(byCustomer,
		func() Stats { return Stats{} },
		func(_ string, o Order, s Stats) Stats {
			s.Orders++
			s.Total += o.Amount
			return s
		},
		serde.JSON[Stats](), stream.Materialized("customer-stats"))
	stats.ToStream().To("customer-stats", serde.String, serde.JSON[Stats]())
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	d, err := streamtest.New(topo, streamtest.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	in := streamtest.InputTopic(d, "orders", serde.String, serde.JSON[Order]())
	_ = in.Pipe("o-1", Order{Customer: "ann", Amount: 30})
	_ = in.Pipe("o-2", Order{Customer: "bob", Amount: 5})
	_ = in.Pipe("o-3", Order{Customer: "ann", Amount: 12})
	out, _ := streamtest.OutputTopic(d, "customer-stats", serde.String, serde.JSON[Stats]()).ReadAll()
	for _, r := range out {
		fmt.Printf("%s %+v\n", r.Key, r.Value)
	}
	// Output:
	// ann {Orders:1 Total:30}
	// bob {Orders:1 Total:5}
	// ann {Orders:2 Total:42}
}

// ExampleTableGroupBy counts users per region from a table of users'
// regions: a user who moves is subtracted from the old region.
func ExampleTableGroupBy() {
	b := stream.NewBuilder()
	users := stream.Table(b, "user-regions", serde.String, serde.String, stream.Materialized("users"))
	byRegion := stream.TableGroupBy(users, func(user, region string) (string, string) { return region, user }, serde.String, serde.String)
	byRegion.Count(stream.Materialized("region-counts")).ToStream().To("region-counts", serde.String, serde.Int64)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "user-regions", serde.String, serde.String)
	_ = in.Pipe("alice", "eu")
	_ = in.Pipe("alice", "us")
	counts, _ := streamtest.OutputTopic(d, "region-counts", serde.String, serde.Int64).ReadAll()
	for _, c := range counts {
		fmt.Println(c.Key, c.Value)
	}
	// Output:
	// eu 1
	// eu 0
	// us 1
}

// ExampleAddKeyValueStore gives a Processor API processor a store: it
// remembers the last value of every key and forwards the previous one.
func ExampleAddKeyValueStore() {
	b := stream.NewBuilder()
	stream.AddKeyValueStore(b, "last", serde.String, serde.String)
	events := stream.From(b, "events", serde.String, serde.String)
	stream.ProcessValues(events, func() topology.Processor[string, string, string, string] {
		var last state.KeyValueStore[string, string]
		return &topology.ProcessorFuncs[string, string, string, string]{
			OnInit: func(ctx topology.ProcessorContext[string, string]) error {
				st, err := ctx.Store("last")
				if err != nil {
					return err
				}
				last, err = state.KeyValue[string, string](st)
				return err
			},
			OnProcess: func(ctx topology.ProcessorContext[string, string], rec topology.Record[string, string]) error {
				prev, _, err := last.Get(rec.Key)
				if err != nil {
					return err
				}
				if err := last.Put(rec.Key, rec.Value); err != nil {
					return err
				}
				return ctx.Forward(topology.Record[string, string]{Value: rec.Value + " after " + prev, Timestamp: rec.Timestamp})
			},
		}
	}, stream.WithStores("last")).To("changes", serde.String, serde.String)
	topo, _ := b.Build()

	d, _ := streamtest.New(topo, streamtest.Config{})
	defer d.Close()
	in := streamtest.InputTopic(d, "events", serde.String, serde.String)
	_ = in.Pipe("door", "open")
	_ = in.Pipe("door", "closed")
	out, _ := streamtest.OutputTopic(d, "changes", serde.String, serde.String).ReadAll()
	for _, r := range out {
		fmt.Printf("%s: %q\n", r.Key, r.Value)
	}
	// Output:
	// door: "open after "
	// door: "closed after open"
}
