package stream

import (
	"strconv"

	"github.com/runnel-dev/runnel/topology"
)

// BranchedKStream splits a stream into named branches (Kafka Streams'
// split()). Each record goes to the first branch whose predicate matches,
// else to the default branch if there is one, else it is dropped.
type BranchedKStream[K, V any] struct {
	s      KStream[K, V] // the split node's stream
	prefix string
	preds  *[]func(K, V) bool
	out    map[string]KStream[K, V]
}

// Split starts splitting s into branches. Named sets the split node's name,
// which prefixes the branch names (default: the generated node name).
func (s KStream[K, V]) Split(opts ...Option) *BranchedKStream[K, V] {
	o := s.b.options(opts)
	name := s.b.nodeName(o, "BRANCH")
	prefix := name
	if o.name == "" {
		prefix += "-"
	}
	preds := &[]func(K, V) bool{}
	split := child(s, name, s.keyChanged, func(_ topology.TaskContext, to []receiver[K, V]) any {
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
	return &BranchedKStream[K, V]{s: split, prefix: prefix, preds: preds, out: map[string]KStream[K, V]{}}
}

// Branch adds a branch of the records that match pred and are not taken by
// an earlier branch. Its stream is returned under prefix+name by
// DefaultBranch or NoDefaultBranch; an empty name means the branch's
// 1-based position.
func (bs *BranchedKStream[K, V]) Branch(name string, pred func(key K, value V) bool) *BranchedKStream[K, V] {
	full := bs.branch(name)
	bs.s.b.checkNil(full, "predicate", pred)
	*bs.preds = append(*bs.preds, pred)
	return bs
}

// DefaultBranch adds a branch of the records no predicate matched and
// returns every branch by name.
func (bs *BranchedKStream[K, V]) DefaultBranch(name string) map[string]KStream[K, V] {
	if name == "" {
		name = "0"
	}
	bs.branch(name)
	return bs.out
}

// NoDefaultBranch drops the records no predicate matched and returns every
// branch by name.
func (bs *BranchedKStream[K, V]) NoDefaultBranch() map[string]KStream[K, V] { return bs.out }

// branch adds a pass-through child of the split node named prefix+name.
func (bs *BranchedKStream[K, V]) branch(name string) string {
	if name == "" {
		name = strconv.Itoa(len(bs.out) + 1)
	}
	full := bs.prefix + name
	bs.out[full] = child(bs.s, full, bs.s.keyChanged, func(_ topology.TaskContext, to []receiver[K, V]) any {
		return &opNode[K, V, K, V]{name: full, to: to, fn: passThrough[K, V]}
	})
	return full
}
