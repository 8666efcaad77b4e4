package runtime

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// balancerProtocol is the group protocol name; all members must run Runnel.
const balancerProtocol = "runnel"

// balancer is a kgo.GroupBalancer on the classic protocol that assigns whole
// tasks: all partitions with the same number of one subtopology's source
// topics go to one member. It is sticky — a task stays with the member that
// owned it, as long as that keeps the counts balanced (max - min <= 1) — and
// eager (all partitions are revoked at each rebalance).
type balancer struct {
	// subOf maps a topic (full name) to its subtopology; ok is false for
	// topics the topology does not read.
	subOf func(topic string) (int, bool)

	// owned is what this member was assigned in its last generation. An
	// eager kgo client revokes everything before rejoining and so passes
	// JoinGroupMetadata no current assignment; without owned the leader
	// would never see previous owners and stickiness would not work.
	mu    sync.Mutex
	owned map[string][]int32 // guarded by mu
}

// setOwned records the member's assignment of the current generation.
func (b *balancer) setOwned(assigned map[string][]int32) {
	owned := make(map[string][]int32, len(assigned))
	for t, ps := range assigned {
		owned[t] = slices.Sorted(slices.Values(ps))
	}
	b.mu.Lock()
	b.owned = owned
	b.mu.Unlock()
}

var _ kgo.GroupBalancer = (*balancer)(nil)

func (*balancer) ProtocolName() string { return balancerProtocol }
func (*balancer) IsCooperative() bool  { return false }

// JoinGroupMetadata reports the member's interests and the partitions it
// owned, from which the leader keeps assignments sticky.
func (b *balancer) JoinGroupMetadata(interests []string, current map[string][]int32, generation int32) []byte {
	if len(current) == 0 {
		b.mu.Lock()
		current = b.owned
		b.mu.Unlock()
	}
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	topics := make([]string, 0, len(current))
	for t := range current {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = t
		owned.Partitions = current[t]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	return meta.AppendTo(nil)
}

func (*balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	return cb, cb.MemberTopics(), err
}

// Balance implements kgo.ConsumerBalancerBalance.
func (b *balancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	tasks, parts, err := b.tasks(topics)
	if err != nil {
		cb.SetError(err)
		return cb.NewPlan()
	}
	members := cb.Members()
	prev := map[topology.TaskID]int{} // task -> index of its previous owner
	prevGen := map[topology.TaskID]int32{}
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		idx := slices.IndexFunc(members, func(o kmsg.JoinGroupResponseMember) bool { return o.MemberID == m.MemberID })
		for _, owned := range meta.OwnedPartitions {
			sub, ok := b.subOf(owned.Topic)
			if !ok {
				continue
			}
			for _, p := range owned.Partitions {
				id := topology.TaskID{Subtopology: sub, Partition: p}
				if g, seen := prevGen[id]; !seen || meta.Generation > g {
					prev[id], prevGen[id] = idx, meta.Generation
				}
			}
		}
	})
	owner := assignTasks(tasks, len(members), prev)
	plan := cb.NewPlan()
	for _, id := range tasks {
		m := &members[owner[id]]
		for _, topic := range parts[id] {
			plan.AddPartition(m, topic, id.Partition)
		}
	}
	return plan
}

// tasks groups the topics' partitions into tasks; it fails when the source
// topics of one subtopology have different partition counts.
func (b *balancer) tasks(topics map[string]int32) ([]topology.TaskID, map[topology.TaskID][]string, error) {
	counts := map[int]int32{}
	first := map[int]string{}
	parts := map[topology.TaskID][]string{}
	names := make([]string, 0, len(topics))
	for t := range topics {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		sub, ok := b.subOf(t)
		if !ok {
			continue
		}
		n := topics[t]
		if c, seen := counts[sub]; seen && c != n {
			return nil, nil, fmt.Errorf("%w: %q (%d partitions) and %q (%d partitions) of sub-topology %d", ErrNotCopartitioned, first[sub], c, t, n, sub)
		}
		counts[sub], first[sub] = n, t
		for p := int32(0); p < n; p++ {
			id := topology.TaskID{Subtopology: sub, Partition: p}
			parts[id] = append(parts[id], t)
		}
	}
	tasks := make([]topology.TaskID, 0, len(parts))
	for id := range parts {
		tasks = append(tasks, id)
	}
	slices.SortFunc(tasks, compareTasks)
	return tasks, parts, nil
}

func compareTasks(a, b topology.TaskID) int {
	return cmp.Or(cmp.Compare(a.Subtopology, b.Subtopology), cmp.Compare(a.Partition, b.Partition))
}

// assignTasks gives each task (sorted) to one of n members so that counts
// differ by at most one, keeping tasks with their previous owner where the
// balance allows. It returns the owner index of each task.
func assignTasks(tasks []topology.TaskID, n int, prev map[topology.TaskID]int) map[topology.TaskID]int {
	owner := make(map[topology.TaskID]int, len(tasks))
	if n == 0 {
		return owner
	}
	floor, extra := len(tasks)/n, len(tasks)%n
	load := make([]int, n)
	// First pass: sticky up to floor; second pass: sticky into the extra
	// slots (at most `extra` members may hold floor+1).
	for pass := 0; pass < 2; pass++ {
		for _, id := range tasks {
			m, ok := prev[id]
			if _, done := owner[id]; done || !ok || m >= n {
				continue
			}
			if load[m] < floor || (pass == 1 && load[m] == floor && extra > 0) {
				if load[m] == floor {
					extra--
				}
				owner[id] = m
				load[m]++
			}
		}
	}
	for _, id := range tasks {
		if _, done := owner[id]; done {
			continue
		}
		m := 0
		for i := range load {
			if load[i] < load[m] {
				m = i
			}
		}
		owner[id] = m
		load[m]++
	}
	return owner
}
