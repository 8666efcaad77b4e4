package stream

import (
	"strconv"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/topology"
)

// BranchedKStream splits a stream into named branches (Kafka Streams'
// split()). Each record goes to the first branch whose predicate matches,
// else to the default branch if there is one, else it is dropped.
type BranchedKStream[K, V any] struct {
	s     pipe[K, V] // the split node
	preds *[]func(K, V) bool
	out   map[string]KStream[K, V]
}

// Split starts splitting s into branches. Named sets the split node's name
// (default: a generated name such as "KSTREAM-BRANCH-0000000001"), which
// prefixes the branch names as is, with no separator, as in Kafka Streams.
func (s KStream[K, V]) Split(opts ...Option) *BranchedKStream[K, V] {
	name := s.b.nodeName(optionsOf(opts), "BRANCH")
	preds := &[]func(K, V) bool{}
	split := child(s.pipe, name, s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		preds := *preds
		return &opNode[K, V, K, V]{name: name, to: to, fn: func(rec topology.Record[K, V], to []receiver[K, V]) error {
			for i, pred := range preds {
				if pred(rec.Key, rec.Value) {
					return to[i].process(rec)
				}
			}
			if len(to) > len(preds) { // the default branch
				return to[len(preds)].process(rec)
			}
			return nil
		}}
	})
	return &BranchedKStream[K, V]{s: split, preds: preds, out: map[string]KStream[K, V]{}}
}

// Branch adds a branch of the records that match pred and are not taken by
// an earlier branch. Its stream is returned by DefaultBranch or
// NoDefaultBranch under the split node's name followed by name, or, when
// name is empty, by the branch's 1-based position: "KSTREAM-BRANCH-00000000011"
// for the first branch of a generated split name, "split-a" for branch "a"
// of Split(Named("split-")).
func (bs *BranchedKStream[K, V]) Branch(name string, pred func(key K, value V) bool) *BranchedKStream[K, V] {
	*bs.preds = append(*bs.preds, pred)
	full := bs.branch(name, len(*bs.preds))
	bs.s.b.checkNil(full, "predicate", pred)
	return bs
}

// DefaultBranch adds a branch of the records no predicate matched and
// returns every branch by name. An empty name means position 0, so the
// branch is the split node's name followed by "0".
func (bs *BranchedKStream[K, V]) DefaultBranch(name string) map[string]KStream[K, V] {
	bs.branch(name, 0)
	return bs.out
}

// NoDefaultBranch drops the records no predicate matched and returns every
// branch by name.
func (bs *BranchedKStream[K, V]) NoDefaultBranch() map[string]KStream[K, V] { return bs.out }

// branch adds a pass-through child of the split node named after the split
// node and name, or index when name is empty. Like Kafka Streams, it
// advances the name counter once per branch, so generated names after a
// split match Kafka Streams'.
func (bs *BranchedKStream[K, V]) branch(name string, index int) string {
	if name == "" {
		name = strconv.Itoa(index)
	}
	full := bs.s.node + name
	bs.s.b.seq++
	bs.out[full] = streamOf(child(bs.s, full, bs.s.keyChanged, func(_ graph.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: full, to: to, fn: passThrough[K, V]}
	}))
	return full
}
