package topology

import "github.com/runnel-dev/runnel/internal/topoaccess"

// Topology is a built, validated processing graph: what stream.Builder.Build
// returns and what stream.NewAppFromTopology and streamtest.New run. It is
// immutable and safe for concurrent use. Its nodes are not exposed; Describe
// and Mermaid show them. A zero Topology (not made by Build) is empty, and
// NewAppFromTopology and streamtest.New refuse it.
type Topology struct {
	g graph
}

// graph is what a Topology wraps (the runtime's graph, internal/graph).
type graph interface {
	Describe() string
	Mermaid() string
}

func init() {
	topoaccess.Wrap = func(g any) any { return &Topology{g: g.(graph)} }
	topoaccess.Unwrap = func(t any) any { return t.(*Topology).g }
}

// Describe returns the topology as text in the shape of Kafka Streams'
// TopologyDescription, so its documentation and tooling habits carry over.
// Internal topics appear by their unprefixed names. Subtopologies are in
// order of id; within one, nodes, successors and predecessors are ordered
// as Kafka Streams orders them: larger subtree first (a node's subtree size
// is 1 plus its children's), then by name. A sink whose topic is chosen per
// record (ToFunc) prints "(topic extractor)" where Kafka Streams prints the
// extractor's Java class.
func (t *Topology) Describe() string {
	if t == nil || t.g == nil {
		return ""
	}
	return t.g.Describe()
}

// Mermaid returns the topology as a Mermaid flowchart: one subgraph per
// subtopology, topics as parallelograms between them.
func (t *Topology) Mermaid() string {
	if t == nil || t.g == nil {
		return ""
	}
	return t.g.Mermaid()
}
