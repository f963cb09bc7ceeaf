package lease_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/lease"
)

// partitionWork is the work of every member of a share; it records any
// partition started while another member runs it.
type partitionWork struct {
	mu         sync.Mutex
	running    map[int]string
	violations []string
}

func (w *partitionWork) of(member string) func(context.Context, int) error {
	return func(ctx context.Context, p int) error {
		w.mu.Lock()
		if other, ok := w.running[p]; ok {
			w.violations = append(w.violations, fmt.Sprintf("%s started partition %d while %s runs it", member, p, other))
		}
		w.running[p] = member
		w.mu.Unlock()
		<-ctx.Done()
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.running[p] == member {
			delete(w.running, p)
		}
		return nil
	}
}

type shareMember struct {
	nc    *nats.Conn
	share *lease.Share
	stop  func()
}

type shareTest struct {
	t       *testing.T
	n       *devstack.NATS
	ttl     time.Duration
	parts   int
	work    *partitionWork
	members map[string]*shareMember
}

func (st *shareTest) start(name string) *shareMember {
	st.t.Helper()
	nc, s := openStore(st.t, st.n, st.ttl, name)
	sh, err := lease.NewShare(s, "proj", st.parts, name, st.work.of(name))
	if err != nil {
		st.t.Fatal(err)
	}
	m := &shareMember{nc: nc, share: sh, stop: run(st.t, sh.Run)}
	st.members[name] = m
	return m
}

// observe returns how many partitions each member owns, failing the test
// when a partition has two owners.
func (st *shareTest) observe() (map[string]int, int) {
	st.t.Helper()
	owner := make(map[int]string)
	counts := make(map[string]int)
	for _, name := range slices.Sorted(maps.Keys(st.members)) {
		for _, p := range st.members[name].share.Owned() {
			if other, ok := owner[p]; ok {
				st.t.Fatalf("partition %d owned by %s and %s", p, other, name)
			}
			owner[p] = name
			counts[name]++
		}
	}
	return counts, len(owner)
}

// converge waits until the members own the partitions as want says,
// checking exclusive ownership at every observation, and returns how long
// it took.
func (st *shareTest) converge(want map[string]int, timeout time.Duration) time.Duration {
	st.t.Helper()
	begin := time.Now()
	eventually(st.t, timeout, func() (bool, string) {
		got, _ := st.observe()
		for name, n := range want {
			if got[name] != n {
				return false, fmt.Sprintf("owned %v, want %v", got, want)
			}
		}
		for name, n := range got {
			if want[name] != n {
				return false, fmt.Sprintf("owned %v, want %v", got, want)
			}
		}
		return true, ""
	})
	return time.Since(begin)
}

// stable checks for a while that every partition has exactly one owner.
func (st *shareTest) stable(d time.Duration) {
	st.t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		if _, owned := st.observe(); owned != st.parts {
			st.t.Fatalf("%d partitions owned, want %d", owned, st.parts)
		}
	}
}

func TestShareBalancesPartitionsAmongMembers(t *testing.T) {
	const ttl = 2 * time.Second
	st := &shareTest{t: t, n: startNATS(t), ttl: ttl, parts: 4,
		work: &partitionWork{running: make(map[int]string)}, members: make(map[string]*shareMember)}
	m1 := st.start("m1")
	t.Logf("m1 alone owns all partitions after %s", st.converge(map[string]int{"m1": 4}, 5*ttl))
	st.start("m2")
	t.Logf("m2 joined: 2+2 after %s", st.converge(map[string]int{"m1": 2, "m2": 2}, 5*ttl))
	st.stable(ttl)

	m1.nc.Close() // m1's process dies: it neither renews nor releases
	took := st.converge(map[string]int{"m2": 4}, 5*ttl)
	t.Logf("m1 died: m2 owns all partitions after %s (TTL %s)", took, ttl)
	st.stable(ttl / 2)

	st.start("m3")
	t.Logf("m3 joined: 2+2 after %s", st.converge(map[string]int{"m2": 2, "m3": 2}, 5*ttl))
	st.stable(ttl)

	st.members["m2"].stop()
	took = st.converge(map[string]int{"m3": 4}, ttl) // before m2's leases could expire: released
	t.Logf("m2 stopped gracefully: m3 owns all partitions after %s", took)
	st.members["m3"].stop()
	m1.stop()
	checkReleased(t, st)
	st.work.mu.Lock()
	defer st.work.mu.Unlock()
	if len(st.work.violations) > 0 {
		t.Fatalf("partition work overlapped: %s", strings.Join(st.work.violations, "; "))
	}
	if len(st.work.running) > 0 {
		t.Fatalf("work still runs after every member stopped: %v", st.work.running)
	}
}

func checkReleased(t *testing.T, st *shareTest) {
	t.Helper()
	_, s := openStore(t, st.n, st.ttl, "observer")
	var held []string
	for p := range st.parts {
		h, err := s.Holder(context.Background(), fmt.Sprintf("proj.partition.%d", p))
		if err != nil {
			t.Fatal(err)
		}
		if h != "" {
			held = append(held, fmt.Sprintf("%d by %s", p, h))
		}
	}
	sort.Strings(held)
	if len(held) > 0 {
		t.Fatalf("partitions still held after every live member stopped: %v", held)
	}
}

func TestNewShareChecksItsArguments(t *testing.T) {
	_, s := openStore(t, startNATS(t), time.Second, "p")
	work := func(context.Context, int) error { return nil }
	for _, c := range []struct {
		prefix, member string
		parts          int
	}{{"proj", "host:1", 4}, {"pro j", "m", 4}, {"proj", "m", 0}} {
		if _, err := lease.NewShare(s, c.prefix, c.parts, c.member, work); err == nil {
			t.Errorf("NewShare(%q, %d, %q) accepted", c.prefix, c.parts, c.member)
		}
	}
	if _, err := lease.NewShare(s, "proj", 4, lease.Sanitize("host:1"), work); err != nil {
		t.Errorf("NewShare with a sanitized member: %v", err)
	}
}
