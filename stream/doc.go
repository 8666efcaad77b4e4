// Package stream is Runnel's typed DSL for stream processing on Apache Kafka,
// after Kafka Streams' StreamsBuilder, and the [App] that runs a topology.
//
// The common case, counting the words of a topic of text lines:
//
//	b := stream.NewBuilder()
//	lines := stream.From(b, "text-lines", serde.String, serde.String)
//	words := stream.FlatMapValues(lines, strings.Fields)
//	byWord := stream.GroupBy(words, func(_, word string) string { return word }, serde.String, serde.String)
//	byWord.Count(stream.Materialized("counts")).ToStream().To("word-counts", serde.String, serde.Int64)
//
//	app, err := stream.NewApp(b, stream.Config{AppID: "wordcount", Brokers: []string{"localhost:9092"}})
//	if err != nil {
//		return err // an invalid topology (naming the node) or config (naming the field)
//	}
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	return app.Run(ctx) // nil after a clean shutdown
//
// # Building a topology
//
// A [Builder] collects operators; [Builder.Build] validates them and returns a
// [topology.Topology], reporting every problem at once, each naming its node
// and matching [topology.ErrInvalid]. Building does no I/O: topics are
// checked when [App.Run] starts.
//
// Sources ([From], [FromTopics], [FromPattern]) decode records with a
// [serde.Serde] for the key and one for the value, and sinks ([KStream.To],
// [KStream.ToFunc]) encode them. A [KStream] is a cheap handle on a node of
// its Builder: every operator on it adds a child node.
//
// Go methods cannot take type parameters, so operators that change the key
// or value type are package functions taking the stream first ([Map],
// [MapValues], [FlatMap], [Process], [GroupBy], [Aggregate]...), and
// operators that keep the types are methods ([KStream.Filter],
// [KStream.Merge]...). Names follow Kafka Streams.
//
// # Options
//
// Operators take variadic options typed by family, so an option an operator
// would not use does not compile: [Named] fits every operator; sources take
// [SourceOption] ([WithOffsetReset]), aggregations [MaterializedOption]
// ([Materialized] and the store options such as [WithInMemoryStore]),
// [KStream.Repartition] a [RepartitionOption] ([WithPartitions]), [Process] a
// [ProcessorOption] ([WithStores]). Timestamp extractors and partitioners
// take the stream's key and value types, so they are given where those are
// fixed: [WithTimestampExtractor](b, fn).From(...) and
// s.[KStream.WithPartitioner](fn).To(...).
//
// # Stateless operators
//
// [KStream.Filter], [KStream.FilterNot], [KStream.Peek] and [KStream.ForEach]
// look at records; [Map], [SelectKey] and [FlatMap] replace keys (so grouping
// the result repartitions it), [MapValues] and [FlatMapValues] keep them.
// [KStream.Split] routes each record to the first branch whose predicate
// matches; [KStream.Merge] combines two streams of one Builder into one.
// [KStream.Repartition] writes a stream through an internal topic, so that
// downstream work is spread by the (new) key.
//
// Records that Kafka delivers with a null value carry
// [topology.Record.Tombstone], which Filter, Peek, Merge, Split, SelectKey,
// Repartition and To keep, so deletes pass through stateless pipelines.
//
// # Grouping and aggregation
//
// [KStream.GroupByKey] and [GroupBy] group a stream by key into a
// [KGroupedStream]; [KGroupedStream.Count], [KGroupedStream.Reduce] and
// [Aggregate] fold each key's records into a [KTable]
// backed by a key-value store. When the key may have changed upstream, the
// aggregation first goes through the repartition topic
// "<app-id>-<name>-repartition", so that all records of a key meet in one
// task.
//
// Aggregation stores are cached by default: the updates of a key are
// collapsed until the next commit (or eviction), so downstream and the
// changelog see one update per key per commit ([Config.CacheMaxBytes];
// [WithCachingDisabled] forwards every update). Records with a null key or a
// null value are dropped and counted, as in Kafka Streams.
//
// # Tables
//
// [Table] reads a topic as a [KTable]: each record is the latest value of its
// key, and a tombstone deletes the key. [KTable.Filter], [KTable.FilterNot]
// and [TableMapValues] derive tables; [KTable.ToStream] returns a table's
// changes as a stream. [TableGroupBy] regroups a table, and
// [KGroupedTable.Count], [KGroupedTable.Reduce] and [TableAggregate]
// aggregate the groups with an adder and a subtractor, so that a row moving
// to another group is retracted from its old one.
//
// # State stores
//
// Every stateful operator keeps its state in a store, one instance per task:
// persistent in the instance's Pebble database by default, in memory with
// [WithInMemoryStore]; logged to the compacted changelog topic
// "<app-id>-<store>-changelog" unless [WithLoggingDisabled], and restored
// from it before the task processes records. [Materialized] names a store.
// See package [github.com/runnel-dev/runnel/state] for the store interfaces.
//
// # The Processor API
//
// [Process] and [ProcessValues] run a [topology.Processor] on every record:
// it can forward any number of records, read and write headers and
// timestamps, schedule stream-time or wall-clock punctuators and use state
// stores. [AddKeyValueStore] defines a store, [WithStores] connects a
// processor to it, and the processor gets it in Init:
//
//	st, err := ctx.Store("last-seen")
//	kv, err := state.KeyValue[string, int64](st)
//
// [topology.ProcessorFuncs] builds a processor from functions. The supplier
// passed to Process is called once per task and must return a new instance
// each time.
//
// # Running an App
//
// [NewApp] builds the topology and validates a [Config], whose zero fields
// mean Kafka Streams' defaults; a bad field is an error naming it and
// matching [ErrConfig]. AppID (the consumer group and the prefix of internal
// topics) and Brokers are required. Start more instances with the same AppID
// to scale out: the consumer group spreads the tasks (one per subtopology
// and input partition) and their state.
//
// [App.Run] checks that source and sink topics exist ([ErrTopicMissing]) and
// are co-partitioned where needed ([ErrNotCopartitioned]), creates internal
// topics, joins the group and processes until its context is done.
//
// The processing guarantee is [AtLeastOnce] by default: input offsets are
// committed every [Config.CommitInterval] (30s) after the outputs they caused
// are acknowledged, so a crash may duplicate records but never lose them.
// [ExactlyOnce] commits outputs, changelog records and input offsets in one
// Kafka transaction every 100ms by default, and writes local state only once
// its transaction committed.
//
// An App goes through the [State] values of Kafka Streams: [Created],
// [Rebalancing], [Running], then [PendingShutdown] and [NotRunning] after a
// clean shutdown, or [PendingError] and [Error] after a failure.
// [App.State] returns the current one and [Config.StateListener] is told of
// every change.
//
// Shutdown is cancelling Run's context: the tasks finish the record in
// progress, flush their caches, commit, and the instance leaves the group;
// Run then returns nil.
//
// [Config.EventListener] (package [github.com/runnel-dev/runnel/stream/event])
// is told of tasks assigned and revoked, rebalances, commits, aborted
// transactions, restorations, skipped records and state changes; the
// Prometheus metrics ([Config.Registerer]) and the logs are fed from the
// same events.
//
// # Error handling
//
// Three handlers decide what happens to a record that fails: it cannot be
// decoded ([Config.DeserializationErrorHandler]), user code or an operator
// returned an error or panicked ([Config.ProcessingErrorHandler]), or Kafka
// refused an output record ([Config.ProductionErrorHandler]). The default,
// [LogAndFail], stops the application: Run returns a
// [*topology.DeserializationError] or [*topology.ProcessingError] naming the
// node and the record's topic, partition and offset, and the record is not
// committed.
// [LogAndContinue] skips the record, logs and counts it; with
// [Config.DeadLetterQueueTopic] set, a skipped input record is also written
// there, raw, with headers describing the error.
//
// A store error (a value its serde cannot decode, a disk failure) is sticky:
// the task fails after the current record, even if the processor ignored
// the error.
//
// # Naming and Describe
//
// Every operator takes [Named]; unnamed ones get Kafka Streams' generated
// names ("KSTREAM-FILTER-0000000003"), numbered as Kafka Streams numbers
// them. Generated names change when operators are added upstream, and with
// them the names of stores, changelogs and repartition topics, which orphans
// their state: name the stateful operators of an application that will
// evolve, and set [Config.EnsureExplicitInternalResourceNaming] to make
// NewApp fail on a generated one. [topology.Topology.Describe] prints a
// topology in the shape of Kafka Streams' TopologyDescription, and
// [topology.Topology.Mermaid] draws it.
//
// # Testing
//
// Package [github.com/runnel-dev/runnel/stream/streamtest] runs a built
// topology synchronously with no broker, as Kafka Streams'
// TopologyTestDriver does: pipe records into input topics, read output
// topics, inspect stores and move the wall clock. The examples of this
// package run on it.
package stream
