// Package topology holds the built processing graph as users see it
// (Topology, with Describe and Mermaid), the Processor API and the error
// types of the error handlers.
//
// A Topology is a set of nodes — sources that read topics, processors, and
// sinks that write topics — split into subtopologies (connected components)
// at repartition topics. Each subtopology runs as one task per input
// partition; a task owns an instance of every node of its subtopology and
// runs them on one goroutine, so processors need no locks.
//
// Most users never build a Topology by hand: package stream compiles its typed
// DSL into one. They meet this package through the Processor API
// (Processor, ProcessorContext, Record, punctuation) and Describe.
package topology
