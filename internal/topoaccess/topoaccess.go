// Package topoaccess links the public topology.Topology to the graph it
// wraps (internal/graph.Graph). The graph imports package topology for the
// Processor API types, so topology cannot name the graph's type, and Go lets
// no other package read topology's unexported fields: package topology sets
// these two functions in its init, and package graph, which imports
// topology (so topology's init has run), uses them with the concrete types.
package topoaccess

// Wrap returns a new *topology.Topology holding g, which has the methods
// Describe() string and Mermaid() string. Set by package topology.
var Wrap func(g any) any

// Unwrap returns the value a *topology.Topology holds. Set by package
// topology.
var Unwrap func(t any) any
