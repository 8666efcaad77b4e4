package stream_test

import (
	"testing"

	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/runnel-dev/runnel/topology"
)

// build runs add on a new Builder and builds it.
func build(t *testing.T, add func(b *stream.Builder)) *topology.Topology {
	t.Helper()
	b := stream.NewBuilder()
	add(b)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestDescribeStatefulMatchesKafkaStreams compares Describe with the
// TopologyDescription Kafka Streams prints for the same topologies: the
// expectations of its TopologyTest (…ShouldPreserveTopologyStructure), and
// for WordCountDemo the description its naming rules give (Kafka Streams'
// documentation prints an older version of it, where the repartition
// nodes of a Materialized store were not yet named after the store).
func TestDescribeStatefulMatchesKafkaStreams(t *testing.T) {
	groupByKey := func(b *stream.Builder) stream.KGroupedStream[string, string] {
		return stream.From(b, "input-topic", serde.String, serde.String).GroupByKey(serde.String, serde.String)
	}
	groupTable := func(b *stream.Builder) stream.KGroupedTable[string, string] {
		return stream.TableGroupBy(stream.Table(b, "input-topic", serde.String, serde.String),
			func(k, v string) (string, string) { return v, k }, serde.String, serde.String)
	}
	tests := []struct {
		name string
		add  func(b *stream.Builder)
		want string
	}{{
		name: "WordCountDemo",
		add:  func(b *stream.Builder) { wordCount(b) },
		want: `Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> KSTREAM-FILTER-0000000006
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FILTER-0000000006 (stores: [])
      --> KSTREAM-SINK-0000000005
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: KSTREAM-SINK-0000000005 (topic: KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition)
      <-- KSTREAM-FILTER-0000000006

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000007 (topics: [KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition])
      --> KSTREAM-AGGREGATE-0000000004
    Processor: KSTREAM-AGGREGATE-0000000004 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000003])
      --> KTABLE-TOSTREAM-0000000008
      <-- KSTREAM-SOURCE-0000000007
    Processor: KTABLE-TOSTREAM-0000000008 (stores: [])
      --> KSTREAM-SINK-0000000009
      <-- KSTREAM-AGGREGATE-0000000004
    Sink: KSTREAM-SINK-0000000009 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000008

`,
	}, {
		name: "WordCountMaterialized",
		add:  func(b *stream.Builder) { wordCount(b, stream.Materialized("counts-store")) },
		want: `Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [streams-plaintext-input])
      --> KSTREAM-FLATMAPVALUES-0000000001
    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])
      --> KSTREAM-KEY-SELECT-0000000002
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> counts-store-repartition-filter
      <-- KSTREAM-FLATMAPVALUES-0000000001
    Processor: counts-store-repartition-filter (stores: [])
      --> counts-store-repartition-sink
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: counts-store-repartition-sink (topic: counts-store-repartition)
      <-- counts-store-repartition-filter

  Sub-topology: 1
    Source: counts-store-repartition-source (topics: [counts-store-repartition])
      --> KSTREAM-AGGREGATE-0000000003
    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [counts-store])
      --> KTABLE-TOSTREAM-0000000007
      <-- counts-store-repartition-source
    Processor: KTABLE-TOSTREAM-0000000007 (stores: [])
      --> KSTREAM-SINK-0000000008
      <-- KSTREAM-AGGREGATE-0000000003
    Sink: KSTREAM-SINK-0000000008 (topic: streams-wordcount-output)
      <-- KTABLE-TOSTREAM-0000000007

`,
	}, {
		name: "kGroupedStreamZeroArgCount",
		add:  func(b *stream.Builder) { groupByKey(b).Count() },
		want: "Topologies:\n" +
			"   Sub-topology: 0\n" +
			"    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic])\n" +
			"      --> KSTREAM-AGGREGATE-0000000002\n" +
			"    Processor: KSTREAM-AGGREGATE-0000000002 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000001])\n" +
			"      --> none\n" +
			"      <-- KSTREAM-SOURCE-0000000000\n\n",
	}, {
		name: "kGroupedStreamNamedMaterializedCount",
		add: func(b *stream.Builder) {
			groupByKey(b).Count(stream.Materialized("count-store"), stream.WithInMemoryStore())
		},
		want: "Topologies:\n" +
			"   Sub-topology: 0\n" +
			"    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic])\n" +
			"      --> KSTREAM-AGGREGATE-0000000001\n" +
			"    Processor: KSTREAM-AGGREGATE-0000000001 (stores: [count-store])\n" +
			"      --> none\n" +
			"      <-- KSTREAM-SOURCE-0000000000\n\n",
	}, {
		name: "kGroupedStreamAnonymousStoreTypedMaterializedCount",
		add:  func(b *stream.Builder) { groupByKey(b).Count(stream.WithInMemoryStore()) },
		want: "Topologies:\n" +
			"   Sub-topology: 0\n" +
			"    Source: KSTREAM-SOURCE-0000000000 (topics: [input-topic])\n" +
			"      --> KSTREAM-AGGREGATE-0000000003\n" +
			"    Processor: KSTREAM-AGGREGATE-0000000003 (stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000002])\n" +
			"      --> none\n" +
			"      <-- KSTREAM-SOURCE-0000000000\n\n",
	}, {
		name: "tableZeroArgCount",
		add:  func(b *stream.Builder) { groupTable(b).Count() },
		want: "Topologies:\n" +
			"   Sub-topology: 0\n" +
			"    Source: KSTREAM-SOURCE-0000000001 (topics: [input-topic])\n" +
			"      --> KTABLE-SOURCE-0000000002\n" +
			"    Processor: KTABLE-SOURCE-0000000002 (stores: [input-topic-STATE-STORE-0000000000])\n" +
			"      --> KTABLE-SELECT-0000000003\n" +
			"      <-- KSTREAM-SOURCE-0000000001\n" +
			"    Processor: KTABLE-SELECT-0000000003 (stores: [])\n" +
			"      --> KSTREAM-SINK-0000000005\n" +
			"      <-- KTABLE-SOURCE-0000000002\n" +
			"    Sink: KSTREAM-SINK-0000000005 (topic: KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition)\n" +
			"      <-- KTABLE-SELECT-0000000003\n" +
			"\n" +
			"  Sub-topology: 1\n" +
			"    Source: KSTREAM-SOURCE-0000000006 (topics: [KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition])\n" +
			"      --> KTABLE-AGGREGATE-0000000007\n" +
			"    Processor: KTABLE-AGGREGATE-0000000007 (stores: [KTABLE-AGGREGATE-STATE-STORE-0000000004])\n" +
			"      --> none\n" +
			"      <-- KSTREAM-SOURCE-0000000006\n" +
			"\n",
	}, {
		name: "tableNamedMaterializedCount",
		add: func(b *stream.Builder) {
			groupTable(b).Count(stream.Materialized("count-store"), stream.WithInMemoryStore())
		},
		want: "Topologies:\n" +
			"   Sub-topology: 0\n" +
			"    Source: KSTREAM-SOURCE-0000000001 (topics: [input-topic])\n" +
			"      --> KTABLE-SOURCE-0000000002\n" +
			"    Processor: KTABLE-SOURCE-0000000002 (stores: [input-topic-STATE-STORE-0000000000])\n" +
			"      --> KTABLE-SELECT-0000000003\n" +
			"      <-- KSTREAM-SOURCE-0000000001\n" +
			"    Processor: KTABLE-SELECT-0000000003 (stores: [])\n" +
			"      --> KSTREAM-SINK-0000000004\n" +
			"      <-- KTABLE-SOURCE-0000000002\n" +
			"    Sink: KSTREAM-SINK-0000000004 (topic: count-store-repartition)\n" +
			"      <-- KTABLE-SELECT-0000000003\n" +
			"\n" +
			"  Sub-topology: 1\n" +
			"    Source: KSTREAM-SOURCE-0000000005 (topics: [count-store-repartition])\n" +
			"      --> KTABLE-AGGREGATE-0000000006\n" +
			"    Processor: KTABLE-AGGREGATE-0000000006 (stores: [count-store])\n" +
			"      --> none\n" +
			"      <-- KSTREAM-SOURCE-0000000005\n" +
			"\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := build(t, tt.add).Describe(); got != tt.want {
				t.Fatalf("Describe() =\n%s\nwant Kafka Streams':\n%s", got, tt.want)
			}
		})
	}
}
