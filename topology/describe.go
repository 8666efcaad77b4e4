package topology

import (
	"fmt"
	"strings"
)

// Describe returns the topology as text in the shape of Kafka Streams'
// TopologyDescription, so its documentation and tooling habits carry over.
// Internal topics appear by their unprefixed names.
func (t *Topology) Describe() string {
	var b strings.Builder
	b.WriteString("Topologies:\n ")
	for i, s := range t.subs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  Sub-topology: %d\n", s.ID)
		for _, n := range s.Nodes {
			switch n.Kind {
			case SourceKind:
				if n.Pattern != nil {
					fmt.Fprintf(&b, "    Source: %s (topicPattern: %s)\n", n.Name, n.Pattern)
				} else {
					fmt.Fprintf(&b, "    Source: %s (topics: [%s])\n", n.Name, strings.Join(n.Topics, ", "))
				}
			case ProcessorKind:
				fmt.Fprintf(&b, "    Processor: %s (stores: [%s])\n", n.Name, strings.Join(n.Stores, ", "))
			case SinkKind:
				fmt.Fprintf(&b, "    Sink: %s (topic: %s)\n", n.Name, sinkTopic(n))
			}
			if n.Kind != SinkKind {
				fmt.Fprintf(&b, "      --> %s\n", joinOrNone(t.children[n.Name]))
			}
			if n.Kind != SourceKind {
				fmt.Fprintf(&b, "      <-- %s\n", joinOrNone(n.Parents))
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

// Mermaid returns the topology as a Mermaid flowchart: one subgraph per
// subtopology, topics as parallelograms between them.
func (t *Topology) Mermaid() string {
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
