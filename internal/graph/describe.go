package graph

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Describe returns the topology as text in the shape of Kafka Streams'
// TopologyDescription, so its documentation and tooling habits carry over.
// Internal topics appear by their unprefixed names. Subtopologies are in
// order of id; within one, nodes, successors and predecessors are ordered
// as Kafka Streams orders them: larger subtree first (a node's subtree size
// is 1 plus its children's), then by name. A sink whose topic is chosen per
// record (ToFunc) prints "(topic extractor)" where Kafka Streams prints the
// extractor's Java class.
func (t *Graph) Describe() string {
	size := t.subtreeSizes()
	order := func(names []string) []string {
		names = slices.Clone(names)
		slices.SortFunc(names, func(a, b string) int {
			if c := cmp.Compare(size[b], size[a]); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		return slices.Compact(names) // a node merged with itself is listed once, as in Kafka Streams' sets
	}
	var b strings.Builder
	b.WriteString("Topologies:\n ")
	for i, s := range t.subs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  Sub-topology: %d\n", s.ID)
		names := make([]string, len(s.Nodes))
		for i, n := range s.Nodes {
			names[i] = n.Name
		}
		for _, name := range order(names) {
			n := t.byName[name]
			switch n.Kind {
			case SourceKind:
				if n.Pattern != nil {
					fmt.Fprintf(&b, "    Source: %s (topics: %s)\n", n.Name, n.Pattern)
				} else {
					fmt.Fprintf(&b, "    Source: %s (topics: [%s])\n", n.Name, strings.Join(n.Topics, ", "))
				}
			case ProcessorKind:
				fmt.Fprintf(&b, "    Processor: %s (stores: [%s])\n", n.Name, strings.Join(n.Stores, ", "))
			case SinkKind:
				if len(n.Topics) == 0 {
					fmt.Fprintf(&b, "    Sink: %s (topic extractor)\n", n.Name)
				} else {
					fmt.Fprintf(&b, "    Sink: %s (topic: %s)\n", n.Name, n.Topics[0])
				}
			}
			if n.Kind != SinkKind {
				fmt.Fprintf(&b, "      --> %s\n", joinOrNone(order(t.children[n.Name])))
			}
			if n.Kind != SourceKind {
				fmt.Fprintf(&b, "      <-- %s\n", joinOrNone(order(n.Parents)))
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

// subtreeSizes returns the size of the subtree under each node as Kafka
// Streams' describe computes it: 1 plus the sizes of its children, so a node
// reachable along several paths counts once per path.
func (t *Graph) subtreeSizes() map[string]int {
	size := make(map[string]int, len(t.nodes))
	// Children are added after their parents, so walking the nodes
	// backwards sizes every child before its parents.
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := t.nodes[i]
		size[n.Name] = 1
		for _, c := range t.children[n.Name] {
			size[n.Name] += size[c]
		}
	}
	return size
}

// Mermaid returns the topology as a Mermaid flowchart: one subgraph per
// subtopology, topics as parallelograms between them.
func (t *Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	id := map[string]string{}
	for i, n := range t.nodes {
		id[n.Name] = fmt.Sprintf("n%d", i)
	}
	topics := map[string]string{}
	topicID := func(name string) string {
		if tid, ok := topics[name]; ok {
			return tid
		}
		tid := fmt.Sprintf("t%d", len(topics))
		topics[name] = tid
		fmt.Fprintf(&b, "  %s[/\"%s\"/]\n", tid, mermaidText(name))
		return tid
	}
	for _, s := range t.subs {
		fmt.Fprintf(&b, "  subgraph sub%d [\"Sub-topology %d\"]\n", s.ID, s.ID)
		for _, n := range s.Nodes {
			fmt.Fprintf(&b, "    %s[\"%s\"]\n", id[n.Name], mermaidText(n.Name))
		}
		b.WriteString("  end\n")
	}
	for _, n := range t.nodes {
		switch n.Kind {
		case SourceKind:
			if n.Pattern != nil {
				fmt.Fprintf(&b, "  %s --> %s\n", topicID("/"+n.Pattern.String()+"/"), id[n.Name])
			}
			for _, topic := range n.Topics {
				fmt.Fprintf(&b, "  %s --> %s\n", topicID(topic), id[n.Name])
			}
		case SinkKind:
			fmt.Fprintf(&b, "  %s --> %s\n", id[n.Name], topicID(sinkTopic(n)))
		}
		for _, c := range t.children[n.Name] {
			fmt.Fprintf(&b, "  %s --> %s\n", id[n.Name], id[c])
		}
	}
	return b.String()
}

func sinkTopic(n *Node) string {
	if len(n.Topics) == 0 {
		return "<chosen per record>"
	}
	return n.Topics[0]
}

func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// mermaidText escapes a label for a quoted Mermaid node: quotes become the
// entity Mermaid understands; everything else, Unicode included, is kept.
func mermaidText(s string) string { return strings.ReplaceAll(s, `"`, "#quot;") }
