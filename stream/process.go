package stream

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/runnel-dev/runnel/state"
	"github.com/runnel-dev/runnel/topology"
)

// Process runs a user Processor (the Processor API) on every record of s.
// supplier is called once per task and must return a new instance each
// time: Process calls it twice when adding the operator, as Kafka Streams
// does, and Build reports an error naming the node if both calls return
// the same instance (tasks sharing one would race). The key may change,
// so grouping the result repartitions it.
// Options: Named, WithStores (the stores the processor may use).
func Process[K, V, KR, VR any](s KStream[K, V], supplier func() topology.Processor[K, V, KR, VR], opts ...ProcessorOption) KStream[KR, VR] {
	return addProcessor(s, "PROCESSOR", true, supplier, nil, opts)
}

// ProcessValues runs a user Processor that keeps the key: records it
// forwards get the input record's key whatever key they carry, so no
// repartition is needed downstream. It cannot forward from a punctuator.
// supplier must return a new instance on every call, as for Process.
// Options: Named, WithStores.
func ProcessValues[K, V, VR any](s KStream[K, V], supplier func() topology.Processor[K, V, K, VR], opts ...ProcessorOption) KStream[K, VR] {
	return addProcessor(s, "PROCESSVALUES", s.keyChanged, supplier, func(n *processorNode[K, V, K, VR]) {
		n.ctx.fixKey = func(rec *topology.Record[K, VR]) error {
			if !n.inProcess {
				return errors.New("ProcessValues cannot forward outside Process")
			}
			rec.Key = n.key
			return nil
		}
	}, opts)
}

func addProcessor[K, V, KR, VR any](s KStream[K, V], prefix string, keyChanged bool, supplier func() topology.Processor[K, V, KR, VR], configure func(*processorNode[K, V, KR, VR]), opts []ProcessorOption) KStream[KR, VR] {
	o := optionsOf(opts)
	name := s.b.nodeName(o, prefix)
	s.b.checkNil(name, "processor supplier", supplier)
	if supplier != nil {
		checkSupplier(s.b, name, supplier)
	}
	stores := o.stores
	s.b.add(&graph.Node{
		Name: name, Kind: graph.ProcessorKind, Parents: []string{s.node}, Stores: stores,
		Make: func(tc graph.TaskContext, children []graph.Child) (any, error) {
			to, err := receivers[KR, VR](children)
			if err != nil {
				return nil, err
			}
			p := supplier()
			if p == nil {
				return nil, &topology.NodeError{Node: name, Err: errors.New("processor supplier returned nil")}
			}
			n := &processorNode[K, V, KR, VR]{p: p}
			n.ctx = processorContext[KR, VR]{node: name, tc: tc, to: to, children: children, stores: stores}
			if configure != nil {
				configure(n)
			}
			return n, nil
		},
	})
	return streamOf(pipe[KR, VR]{b: s.b, node: name, keyChanged: keyChanged})
}

// checkSupplier calls supplier twice, as Kafka Streams'
// ApiUtils.checkSupplier does, and records a build error naming node when
// both calls return the same instance: every task calls the supplier for
// its own processor, and tasks run on different goroutines. A panic in the
// supplier is recorded as a build error too. The two processors are
// discarded without Init or Close.
func checkSupplier[P any](b *Builder, node string, supplier func() P) {
	defer func() {
		if p := recover(); p != nil {
			b.fail(node, fmt.Errorf("processor supplier panicked when called at build time: %v", p))
		}
	}()
	if sameInstance(supplier(), supplier()) {
		b.fail(node, errors.New("processor supplier returned the same instance twice: it must return a new Processor on every call (each task calls it for its own instance; sharing one is a data race between tasks)"))
	}
}

// sameInstance reports whether a and b are the same instance of a
// reference type (pointer, map or channel). Values of other kinds are
// copies, so never the same instance; neither are pointers to zero-size
// types, which Go may place at one address although they hold no state.
// Unlike a == b, it does not panic on non-comparable dynamic types.
func sameInstance(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() || va.Type() != vb.Type() {
		return false
	}
	switch va.Kind() {
	case reflect.Pointer:
		return va.Type().Elem().Size() > 0 && !va.IsNil() && va.Pointer() == vb.Pointer()
	case reflect.Map, reflect.Chan:
		return !va.IsNil() && va.Pointer() == vb.Pointer()
	}
	return false
}

// processorNode adapts a user Processor to a node instance.
type processorNode[K, V, KR, VR any] struct {
	p         topology.Processor[K, V, KR, VR]
	ctx       processorContext[KR, VR]
	key       K
	inProcess bool
}

func (n *processorNode[K, V, KR, VR]) process(rec topology.Record[K, V]) (err error) {
	defer recoverPanic(n.ctx.node, &err)
	n.key, n.inProcess = rec.Key, true
	defer func() { n.inProcess = false }()
	return nodeError(n.ctx.node, n.p.Process(rec))
}

// Init implements graph.Lifecycle.
func (n *processorNode[K, V, KR, VR]) Init() (err error) {
	defer recoverPanic(n.ctx.node, &err)
	return nodeError(n.ctx.node, n.p.Init(&n.ctx))
}

// Close implements graph.Lifecycle.
func (n *processorNode[K, V, KR, VR]) Close() (err error) {
	defer recoverPanic(n.ctx.node, &err)
	return nodeError(n.ctx.node, n.p.Close())
}

// processorContext implements topology.ProcessorContext for one processor
// instance.
type processorContext[K, V any] struct {
	node     string
	tc       graph.TaskContext
	to       []receiver[K, V]
	children []graph.Child
	stores   []string // the stores connected with WithStores
	fixKey   func(*topology.Record[K, V]) error
}

var _ topology.ProcessorContext[string, string] = (*processorContext[string, string])(nil)

func (c *processorContext[K, V]) Forward(rec topology.Record[K, V]) error {
	if c.fixKey != nil {
		if err := c.fixKey(&rec); err != nil {
			return err
		}
	}
	defer c.tc.SwapRecordTime(c.tc.SwapRecordTime(rec.Timestamp))
	return forward(c.to, rec)
}

func (c *processorContext[K, V]) ForwardTo(child string, rec topology.Record[K, V]) error {
	if c.fixKey != nil {
		if err := c.fixKey(&rec); err != nil {
			return err
		}
	}
	for i, ch := range c.children {
		if ch.Name == child {
			defer c.tc.SwapRecordTime(c.tc.SwapRecordTime(rec.Timestamp))
			return c.to[i].process(rec)
		}
	}
	return fmt.Errorf("%w: %q has no child %q", topology.ErrUnknownChild, c.node, child)
}

func (c *processorContext[K, V]) TaskID() topology.TaskID { return c.tc.TaskID() }
func (c *processorContext[K, V]) AppID() string           { return c.tc.AppID() }
func (c *processorContext[K, V]) RecordMetadata() (topology.RecordMetadata, bool) {
	return c.tc.RecordMetadata()
}
func (c *processorContext[K, V]) StreamTime() int64        { return c.tc.StreamTime() }
func (c *processorContext[K, V]) WallClockTime() time.Time { return c.tc.WallClockTime() }
func (c *processorContext[K, V]) Commit()                  { c.tc.RequestCommit() }

// Store returns a store connected to the processor with WithStores; for
// any other name it returns an error wrapping ErrStoreNotConnected.
func (c *processorContext[K, V]) Store(name string) (state.Store, error) {
	if !slices.Contains(c.stores, name) {
		return nil, fmt.Errorf("%w: node %q is not connected to store %q (connect it with stream.WithStores)", ErrStoreNotConnected, c.node, name)
	}
	return c.tc.Store(name)
}

func (c *processorContext[K, V]) Schedule(interval time.Duration, typ topology.PunctuationType, fn topology.Punctuator) (topology.Cancellable, error) {
	if fn == nil {
		return nil, fmt.Errorf("stream: node %q: punctuator is nil", c.node)
	}
	return c.tc.Schedule(c.node, interval, typ, func(ts int64) (err error) {
		defer recoverPanic(c.node, &err)
		return nodeError(c.node, fn(ts))
	})
}
