package runtime

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/topology"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func taskIDs(subs int, partitions int32) []topology.TaskID {
	var ids []topology.TaskID
	for s := range subs {
		for p := range partitions {
			ids = append(ids, topology.TaskID{Subtopology: s, Partition: p})
		}
	}
	return ids
}

// loads returns how many tasks each of n members got, failing on a task
// without a valid owner.
func loads(t *testing.T, tasks []topology.TaskID, n int, owner map[topology.TaskID]int) []int {
	t.Helper()
	if len(owner) != len(tasks) {
		t.Fatalf("%d tasks assigned, want %d: %v", len(owner), len(tasks), owner)
	}
	l := make([]int, n)
	for _, id := range tasks {
		m, ok := owner[id]
		if !ok || m < 0 || m >= n {
			t.Fatalf("task %v has owner %d (ok=%v), want one of %d members", id, m, ok, n)
		}
		l[m]++
	}
	return l
}

// maxKept is the most tasks previous owners can keep in a balanced
// assignment: each surviving member keeps up to floor tasks, and up to
// `extra` of them one more.
func maxKept(tasks []topology.TaskID, n int, prev map[topology.TaskID]int) int {
	floor, extra := len(tasks)/n, len(tasks)%n
	had := make([]int, n)
	for _, id := range tasks {
		if m, ok := prev[id]; ok && m >= 0 && m < n {
			had[m]++
		}
	}
	kept, over := 0, 0
	for _, h := range had {
		kept += min(h, floor)
		if h > floor {
			over++
		}
	}
	return kept + min(over, extra)
}

// TestAssignTasksProperties checks, for many task and member counts and
// random previous owners, that assignTasks gives every task to one member,
// keeps the counts within one of each other, keeps as many tasks with their
// previous owners as the balance allows, and is deterministic.
func TestAssignTasksProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for subs := 1; subs <= 3; subs++ {
		for parts := int32(1); parts <= 12; parts++ {
			tasks := taskIDs(subs, parts)
			for n := 1; n <= 9; n++ {
				for trial := range 4 {
					prev := map[topology.TaskID]int{}
					switch trial {
					case 0: // a fresh group: no previous owners
					case 1: // everything on one member, which may have left
						for _, id := range tasks {
							prev[id] = 0
						}
					default: // random previous owners among up to n+2 members
						for _, id := range tasks {
							if rng.IntN(5) > 0 {
								prev[id] = rng.IntN(n + 2)
							}
						}
					}
					name := fmt.Sprintf("tasks=%d/members=%d/trial=%d", len(tasks), n, trial)
					owner := assignTasks(tasks, n, prev)
					l := loads(t, tasks, n, owner)
					if lo, hi := slices.Min(l), slices.Max(l); hi-lo > 1 {
						t.Errorf("%s: loads %v differ by more than one", name, l)
					}
					kept := 0
					for id, m := range owner {
						if p, ok := prev[id]; ok && p == m {
							kept++
						}
					}
					if want := maxKept(tasks, n, prev); kept != want {
						t.Errorf("%s: %d tasks stayed with their previous owner, want the maximum %d (prev %v, got %v)", name, kept, want, prev, owner)
					}
					if again := assignTasks(tasks, n, maps.Clone(prev)); !maps.Equal(again, owner) {
						t.Errorf("%s: not deterministic: %v then %v", name, owner, again)
					}
				}
			}
		}
	}
}

// TestAssignTasksCases spells out the rebalances an application goes
// through.
func TestAssignTasksCases(t *testing.T) {
	id := func(p int32) topology.TaskID { return topology.TaskID{Partition: p} }
	tests := []struct {
		name  string
		tasks int32
		n     int
		prev  map[int32]int // partition -> previous owner
		want  map[int32]int
	}{
		{"first member takes all", 3, 1, nil, map[int32]int{0: 0, 1: 0, 2: 0}},
		{"fresh group round-robins by load", 4, 2, nil, map[int32]int{0: 0, 1: 1, 2: 0, 3: 1}},
		{"second member takes only the surplus", 3, 2, map[int32]int{0: 0, 1: 0, 2: 0}, map[int32]int{0: 0, 1: 0, 2: 1}},
		{"new member takes half of six", 6, 2, map[int32]int{0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0}, map[int32]int{0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1}},
		{"stickiness survives member order", 4, 2, map[int32]int{0: 1, 1: 0, 2: 1, 3: 0}, map[int32]int{0: 1, 1: 0, 2: 1, 3: 0}},
		{"leaver's tasks go to the survivor", 4, 1, map[int32]int{0: 0, 1: 1, 2: 0, 3: 1}, map[int32]int{0: 0, 1: 0, 2: 0, 3: 0}},
		{"third member takes one from each", 6, 3, map[int32]int{0: 0, 1: 0, 2: 0, 3: 1, 4: 1, 5: 1}, map[int32]int{0: 0, 1: 0, 2: 2, 3: 1, 4: 1, 5: 2}},
		{"more members than tasks", 2, 3, map[int32]int{0: 2, 1: 2}, map[int32]int{0: 2, 1: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tasks := taskIDs(1, tt.tasks)
			prev := map[topology.TaskID]int{}
			for p, m := range tt.prev {
				prev[id(p)] = m
			}
			got := assignTasks(tasks, tt.n, prev)
			want := map[topology.TaskID]int{}
			for p, m := range tt.want {
				want[id(p)] = m
			}
			if !maps.Equal(got, want) {
				t.Errorf("assignTasks = %v, want %v", got, want)
			}
		})
	}
	if got := assignTasks(taskIDs(1, 3), 0, nil); len(got) != 0 {
		t.Errorf("assignTasks with no members = %v, want none", got)
	}
}

// testBalancer reads topics "a" and "b" (sub-topology 0, co-partitioned)
// and "c" (sub-topology 1).
func testBalancer() *balancer {
	subs := map[string]int{"a": 0, "b": 0, "c": 1}
	return &balancer{subOf: func(topic string) (int, bool) { s, ok := subs[topic]; return s, ok }}
}

func TestBalancerTasks(t *testing.T) {
	b := testBalancer()
	tasks, parts, err := b.tasks(map[string]int32{"a": 2, "b": 2, "c": 3, "unrelated": 7})
	if err != nil {
		t.Fatal(err)
	}
	want := []topology.TaskID{{Subtopology: 0, Partition: 0}, {Subtopology: 0, Partition: 1}, {Subtopology: 1, Partition: 0}, {Subtopology: 1, Partition: 1}, {Subtopology: 1, Partition: 2}}
	if !slices.Equal(tasks, want) {
		t.Errorf("tasks = %v, want %v", tasks, want)
	}
	if got := parts[topology.TaskID{Subtopology: 0, Partition: 1}]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("topics of task 0_1 = %v, want [a b]", got)
	}
	if got := parts[topology.TaskID{Subtopology: 1, Partition: 2}]; !slices.Equal(got, []string{"c"}) {
		t.Errorf("topics of task 1_2 = %v, want [c]", got)
	}

	_, _, err = b.tasks(map[string]int32{"a": 2, "b": 3, "c": 3})
	if err == nil {
		t.Fatal("tasks accepted topics a (2 partitions) and b (3) of one sub-topology")
	}
	for _, w := range []string{`"a"`, `"b"`, "2 partitions", "3 partitions", "co-partitioned"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

// joining is a member joining the group: its balancer writes its join
// metadata, reporting the generation it last had.
type joining struct {
	b   *balancer
	gen int32
}

// balance runs leader's Balance as a group leader would: the members join
// with the metadata their own balancers wrote, and the plan is read back
// from the sync assignments, by member ID "m<index>".
func balance(t *testing.T, leader *balancer, members []joining, topics map[string]int32) (map[string]map[string][]int32, error) {
	t.Helper()
	var joined []kmsg.JoinGroupResponseMember
	for i, m := range members {
		joined = append(joined, kmsg.JoinGroupResponseMember{
			MemberID: fmt.Sprintf("m%d", i),
			// franz-go's eager protocol passes no current assignment.
			ProtocolMetadata: m.b.JoinGroupMetadata(slices.Sorted(maps.Keys(topics)), nil, m.gen),
		})
	}
	mb, _, err := leader.MemberBalancer(joined)
	if err != nil {
		t.Fatal(err)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(topics)
	if err != nil {
		return nil, err
	}
	plan := map[string]map[string][]int32{}
	for _, a := range into.IntoSyncAssignment() {
		assigned, err := leader.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		for topic, ps := range assigned {
			if len(ps) == 0 {
				delete(assigned, topic)
			}
			slices.Sort(ps)
		}
		plan[a.MemberID] = assigned
	}
	return plan, nil
}

func equalPlan(a, b map[string][]int32) bool { return maps.EqualFunc(a, b, slices.Equal) }

// TestBalancerRoundTrip drives Balance through franz-go's consumer protocol
// encoding, as the group leader does. Members report the tasks they owned
// although franz-go's eager protocol passes them none (setOwned), so a
// member that joins takes only the surplus; a task's partitions of
// co-partitioned topics go to one member; and of two claims on a task the
// newer generation's wins.
func TestBalancerRoundTrip(t *testing.T) {
	topics := map[string]int32{"a": 2, "b": 2, "c": 2} // tasks 0_0 0_1 (a+b) and 1_0 1_1 (c)
	first := testBalancer()
	plan, err := balance(t, first, []joining{{first, 0}}, topics)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string][]int32{"a": {0, 1}, "b": {0, 1}, "c": {0, 1}}
	if !equalPlan(plan["m0"], all) {
		t.Fatalf("single member got %v, want everything %v", plan["m0"], all)
	}
	first.setOwned(plan["m0"])

	// A newcomer (listed first, so a non-sticky balancer would give it
	// task 0_0) takes two of the four tasks; the old member keeps the
	// first two (0_0 and 0_1, i.e. all of a and b).
	second := testBalancer()
	plan, err = balance(t, second, []joining{{second, -1}, {first, 1}}, topics)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]int32{"a": {0, 1}, "b": {0, 1}}; !equalPlan(plan["m1"], want) {
		t.Errorf("old member got %v, want to keep %v (plan %v)", plan["m1"], want, plan)
	}
	if want := map[string][]int32{"c": {0, 1}}; !equalPlan(plan["m0"], want) {
		t.Errorf("newcomer got %v, want only the surplus %v", plan["m0"], want)
	}

	// Two members claim c-0; the claim of the newer generation wins,
	// whatever the member order.
	cOnly := map[string]int32{"c": 2}
	fresh, stale := testBalancer(), testBalancer()
	fresh.setOwned(map[string][]int32{"c": {0}})
	stale.setOwned(map[string][]int32{"c": {0, 1}})
	for _, order := range [][]joining{{{fresh, 5}, {stale, 3}}, {{stale, 3}, {fresh, 5}}} {
		plan, err := balance(t, fresh, order, cOnly)
		if err != nil {
			t.Fatal(err)
		}
		freshID, staleID := "m0", "m1"
		if order[0].b == stale {
			freshID, staleID = "m1", "m0"
		}
		if !equalPlan(plan[freshID], map[string][]int32{"c": {0}}) || !equalPlan(plan[staleID], map[string][]int32{"c": {1}}) {
			t.Errorf("fresh claim (gen 5) on c-0 vs stale (gen 3) on c-0,1: plan %v, want fresh %s c[0], stale %s c[1]", plan, freshID, staleID)
		}
	}

	// Topics that are not co-partitioned fail the balance.
	_, err = balance(t, first, []joining{{first, 2}}, map[string]int32{"a": 2, "b": 3, "c": 2})
	if err == nil || !strings.Contains(err.Error(), "co-partitioned") {
		t.Errorf("Balance with a=2, b=3 partitions: err = %v, want a co-partitioning error", err)
	}
}
