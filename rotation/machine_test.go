package rotation

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// A scenario drives a sim through administrator actions; it must cope
// with a server crash at any point (the sim reboots the server).
type scenario struct {
	name  string
	nodes int
	run   func(s *sim) (seenAtDelete map[proto.NodeID]int)
}

func deleteNode(s *sim, i int) map[proto.NodeID]int {
	id := nid(i)
	mm := s.moms[id]
	// The server persists the request, then the registry, then starts.
	// Start names the request again: a crash after the request may have
	// served it with a rotation that began before the node was removed.
	reason := fmt.Sprintf("delete node %d", i)
	s.do("request", func() ([]Action, error) { return s.m.Request(reason), nil })
	mm.deleted = true
	if mm.up {
		mm.up = false
		s.do("node removed", func() ([]Action, error) { return s.m.NodeRemoved(id, s.now) })
	}
	s.do("start", func() ([]Action, error) { return s.m.Start(reason, s.now) })
	return map[proto.NodeID]int{id: len(mm.seen)}
}

var scenarios = []scenario{
	{name: "delete", nodes: 4, run: func(s *sim) map[proto.NodeID]int {
		return deleteNode(s, 4)
	}},
	{name: "rotate-with-mom-down", nodes: 3, run: func(s *sim) map[proto.NodeID]int {
		mm := s.moms[nid(3)]
		mm.running = false
		s.disconnect(mm)
		s.do("rotate", func() ([]Action, error) { return s.m.Start("rotate key", s.now) })
		// The MOM stays down for the whole rotation.
		for range 30 {
			if s.m.Info().Phase == Idle {
				break
			}
			if s.drain() {
				s.boot()
			}
			s.now = s.now.Add(time.Second)
			s.do("tick", func() ([]Action, error) { return s.m.Tick(s.now) })
			for _, id := range s.ids[:2] {
				if !s.moms[id].up {
					s.moms[id].running = true
					if s.connect(s.moms[id]) {
						s.boot()
					}
				}
			}
			mm.running = false
			if mm.up {
				s.disconnect(mm)
			}
		}
		if st := s.m.NodeState(nid(3)); st != NodeNeedsSync {
			s.fatalf("offline node state %q, want needs sync", st)
		}
		return nil // settle restarts it: it catches up by Welcome
	}},
	{name: "delete-during-distribution", nodes: 4, run: func(s *sim) map[proto.NodeID]int {
		s.do("rotate", func() ([]Action, error) { return s.m.Start("rotate key", s.now) })
		// Node 4 has the new key in hand (update applied) when it is deleted.
		return deleteNode(s, 4)
	}},
	{name: "request-during-grace", nodes: 3, run: func(s *sim) map[proto.NodeID]int {
		s.do("rotate", func() ([]Action, error) { return s.m.Start("rotate key", s.now) })
		for range 20 {
			if s.m.Info().Phase == Grace {
				break
			}
			s.step()
		}
		return deleteNode(s, 3)
	}},
	{name: "failed-ack", nodes: 3, run: func(s *sim) map[proto.NodeID]int {
		s.moms[nid(2)].failStore = true
		s.do("rotate", func() ([]Action, error) { return s.m.Start("rotate key", s.now) })
		for range 20 {
			if s.m.Info().Phase != Distributing {
				break
			}
			s.step()
		}
		s.moms[nid(2)].failStore = false
		return nil
	}},
	{name: "manual", nodes: 3, run: func(s *sim) map[proto.NodeID]int {
		s.manual = true
		s.params.Manual = true
		s.m.SetParams(s.params)
		s.do("rotate", func() ([]Action, error) { return s.m.Start("rotate key", s.now) })
		// The administrator exports the next key and imports it on every
		// node (the running MOM acknowledges with seq 0), then activates.
		for range 20 {
			if s.m.Info().Phase == Distributing && s.live.Next() != nil {
				break
			}
			s.step()
		}
		k := s.live.Next()
		for _, id := range s.ids {
			mm := s.moms[id]
			r, _, err := ApplyUpdate(mm.ring, k)
			if err != nil {
				s.fatalf("import: %v", err)
			}
			mm.set(r)
			if mm.up {
				s.queueAck(id, 0, k.ID, true)
			}
		}
		if s.drain() {
			s.boot()
		}
		for range 20 {
			if st := s.m.Info(); st.Phase == Distributing {
				if st.New != k.ID {
					s.fatalf("manual rotation changed its key across a restart: %s, exported %s", st.New, k.ID)
				}
				s.do("activate", func() ([]Action, error) { return s.m.Activate(k.ID, s.now) })
				continue
			}
			return nil
		}
		s.fatalf("manual rotation never left distributing")
		return nil
	}},
}

func (sc scenario) play(t *testing.T, crashAt []int, momCrashAt int) (*sim, int) {
	s := newSim(t, sc.nodes, 7)
	initial := s.live.Active().ID
	for _, c := range crashAt {
		s.crashAt[s.executed+c] = true
	}
	if momCrashAt > 0 {
		s.momCrash[s.executed+momCrashAt] = nid(1)
	}
	base := s.executed
	seen := sc.run(s)
	s.settle()
	// Convergence must survive one more server restart.
	s.crashServer()
	s.boot()
	s.settle()
	s.checkConverged(seen, initial)
	return s, s.executed - base
}

// TestRotationConverges plays each scenario without crashes, then with a
// server crash after every single action, then with two crashes, then
// with a MOM crash after every action: every run ends with one active key
// held by every node and no key left anywhere else.
func TestRotationConverges(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			_, total := sc.play(t, nil, 0)
			if total == 0 {
				t.Fatal("scenario executed no action")
			}
			for i := 1; i <= total; i++ {
				t.Run(fmt.Sprintf("server-crash-after-%d", i), func(t *testing.T) {
					s, _ := sc.play(t, []int{i}, 0)
					if s.crashes < 2 {
						t.Fatalf("crash after action %d did not happen (scenario executed fewer actions)", i)
					}
				})
				t.Run(fmt.Sprintf("two-crashes-%d", i), func(t *testing.T) {
					sc.play(t, []int{i, i + 1 + i%3}, 0)
				})
				t.Run(fmt.Sprintf("mom-crash-after-%d", i), func(t *testing.T) {
					sc.play(t, nil, i)
				})
			}
		})
	}
}

func activeRing(t *testing.T) *keys.Keyring {
	t.Helper()
	s := newSim(t, 0, 1)
	return s.live
}

func machine(t *testing.T, ring *keys.Keyring, nodes ...proto.NodeID) *Machine {
	t.Helper()
	s := newSim(t, 0, 2)
	m, acts, err := Restore(s.rnd, Params{Grace: 5 * time.Second, Timeout: 10 * time.Second}, Record{}, ring, nodes, epoch)
	if err != nil || len(acts) != 0 {
		t.Fatalf("restore idle: %v %v", acts, err)
	}
	return m
}

func steps(acts []Action) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Step())
	}
	return strings.Join(out, ",")
}

func TestStartWithNobodyConnectedActivatesAtOnce(t *testing.T) {
	ring := activeRing(t)
	m := machine(t, ring, nid(1))
	acts, err := m.Start("rotate key", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := steps(acts), "distributing,next-saved,activating,activated,grace"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if st := m.NodeState(nid(1)); st != NodeNeedsSync {
		t.Fatalf("node down during the rotation: state %q, want needs sync", st)
	}
	acts, _ = m.Tick(epoch.Add(4 * time.Second))
	if len(acts) != 0 {
		t.Fatalf("retired before the grace period ended: %s", steps(acts))
	}
	acts, _ = m.Tick(epoch.Add(5 * time.Second))
	if got, want := steps(acts), "retiring,retired,idle"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if m.Ring().Len() != 1 || m.Ring().Active().ID == ring.Active().ID {
		t.Fatalf("ring after rotation: %s", ringString(m.Ring()))
	}
	// It reconnects with the new key: in sync.
	m.Connected(nid(1), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	if st := m.NodeState(nid(1)); st != NodeCurrent {
		t.Fatalf("state after catch-up %q, want current", st)
	}
}

func TestDistributionWaitsForConnectedNodes(t *testing.T) {
	m := machine(t, activeRing(t), nid(1), nid(2), nid(3))
	m.Connected(nid(1), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	m.Connected(nid(2), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	acts, err := m.Start("rotate key", epoch)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := steps(acts), "distributing,next-saved,update"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	up := acts[2].(SendUpdate)
	if len(up.To) != 2 || up.Key.ID != m.Info().New || up.Key.State != keys.StateNext {
		t.Fatalf("update %+v", up)
	}
	save := acts[0].(SaveRecord)
	if rec := save.Apply(Record{}); len(rec.Behind) != 1 || rec.Behind[0] != nid(3) || save.Record.Behind != nil || save.Behind != 1 {
		t.Fatalf("persisted behind %v (changes %v, count %d)", rec.Behind, save.Changes, save.Behind)
	}
	newKey := m.Info().New
	// Wrong key, wrong rotation, unknown node: ignored.
	for _, a := range [][]Action{
		must(m.Ack(nid(1), up.Seq, newKey+1, true, epoch)),
		must(m.Ack(nid(1), up.Seq+1, newKey, true, epoch)),
		must(m.Ack(nid(9), up.Seq, newKey, true, epoch)),
	} {
		if len(a) != 0 {
			t.Fatalf("bad ack acted: %s", steps(a))
		}
	}
	if acts := must(m.Ack(nid(1), up.Seq, newKey, true, epoch)); len(acts) != 0 {
		t.Fatalf("activated with node 2 pending: %s", steps(acts))
	}
	if m.NodeState(nid(1)) != NodeAcked || m.NodeState(nid(2)) != NodePending || m.NodeState(nid(3)) != NodeNeedsSync {
		t.Fatalf("states %s %s %s", m.NodeState(nid(1)), m.NodeState(nid(2)), m.NodeState(nid(3)))
	}
	in := m.Info()
	if in.Waiting != 2 || in.Acked != 1 || in.Pending != 1 || in.Deadline.IsZero() {
		t.Fatalf("info %+v", in)
	}
	acts = must(m.Ack(nid(2), 0, newKey, true, epoch))
	if got, want := steps(acts), "activating,activated,grace,activate"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if act := acts[3].(SendActivate); act.Key != newKey || len(act.To) != 2 {
		t.Fatalf("activate %+v", act)
	}
}

func must(a []Action, err error) []Action {
	if err != nil {
		panic(err)
	}
	return a
}

func TestDeadlineActivatesWithoutStragglers(t *testing.T) {
	m := machine(t, activeRing(t), nid(1), nid(2))
	m.Connected(nid(1), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	m.Connected(nid(2), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	must(m.Start("rotate key", epoch))
	must(m.Ack(nid(1), 0, m.Info().New, true, epoch))
	if acts := must(m.Tick(epoch.Add(9 * time.Second))); len(acts) != 0 {
		t.Fatalf("activated before the deadline: %s", steps(acts))
	}
	acts := must(m.Tick(epoch.Add(10 * time.Second)))
	if got, want := steps(acts), "activating,activated,grace,activate"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if m.NodeState(nid(2)) != NodeNeedsSync || m.NodeState(nid(1)) != NodeCurrent {
		t.Fatalf("after deadline: straggler %q, acked %q", m.NodeState(nid(2)), m.NodeState(nid(1)))
	}
	// A disconnect of a pending node ends the wait too.
	must(m.Tick(epoch.Add(20 * time.Second)))
	must(m.Start("again", epoch.Add(21*time.Second)))
	if acts := must(m.Disconnected(nid(2), epoch.Add(21*time.Second))); len(acts) != 0 {
		t.Fatalf("node 1 still pending, yet: %s", steps(acts))
	}
	acts = must(m.Disconnected(nid(1), epoch.Add(21*time.Second)))
	if !strings.HasPrefix(steps(acts), "activating") {
		t.Fatalf("all waited-for nodes left: steps %s", steps(acts))
	}
}

func TestStartDuringDistributionReplacesTheKey(t *testing.T) {
	m := machine(t, activeRing(t), nid(1))
	m.Connected(nid(1), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	must(m.Start("rotate key", epoch))
	first, seq := m.Info().New, m.Info().Seq
	acts := must(m.Start("delete node n2", epoch))
	if got := steps(acts); got != "queued" {
		t.Fatalf("steps %s, want queued", got)
	}
	// The key being distributed is not activated any more: not by acks,
	// not by the administrator, not at the deadline.
	if acts := must(m.Ack(nid(1), seq, first, true, epoch)); len(acts) != 0 {
		t.Fatalf("ack activated a key a newer request replaces: %s", steps(acts))
	}
	if _, err := m.Activate(first, epoch); !errors.Is(err, ErrNotNext) {
		t.Fatalf("activate a key being replaced: %v", err)
	}
	// More requests within the debounce join the same restart.
	must(m.Start("delete node n3", epoch.Add(400*time.Millisecond)))
	if acts := must(m.Tick(epoch.Add(800 * time.Millisecond))); len(acts) != 0 {
		t.Fatalf("restarted before the debounce: %s", steps(acts))
	}
	acts = must(m.Tick(epoch.Add(900 * time.Millisecond)))
	if got, want := steps(acts), "distributing,next-saved,retire,update"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	in := m.Info()
	if in.New == first || in.Seq != seq+1 || m.Ring().Lookup(first) != nil || m.Ring().Next().ID != in.New {
		t.Fatalf("after restart: info %+v ring %s", in, ringString(m.Ring()))
	}
	if r := acts[2].(SendRetire); r.Key != first {
		t.Fatalf("retire %s, want the abandoned %s", r.Key, first)
	}
	if !strings.Contains(in.Reason, "rotate key") || !strings.Contains(in.Reason, "delete node n2") || !strings.Contains(in.Reason, "delete node n3") {
		t.Fatalf("reason %q", in.Reason)
	}
	if in.Queued != 0 || m.NodeState(nid(1)) != NodePending {
		t.Fatalf("after the restart: %+v, node 1 %s", in, m.NodeState(nid(1)))
	}
}

func TestRequestsQueueBehindGrace(t *testing.T) {
	m := machine(t, activeRing(t))
	must(m.Start("rotate key", epoch))
	if m.Info().Phase != Grace {
		t.Fatalf("phase %s", m.Info().Phase)
	}
	acts := must(m.Start("delete node n1", epoch))
	if got := steps(acts); got != "queued" || acts[0].(SaveRecord).Record.Queued[0] != "delete node n1" {
		t.Fatalf("steps %s", got)
	}
	if acts := must(m.Start("delete node n1", epoch)); steps(acts) != "queued" || len(m.Record().Queued) != 1 {
		t.Fatalf("duplicate request queued twice: %v", m.Record().Queued)
	}
	first := m.Info().New
	acts = must(m.Tick(epoch.Add(time.Minute)))
	if !strings.HasPrefix(steps(acts), "retiring,retired,distributing,next-saved") {
		t.Fatalf("steps %s", steps(acts))
	}
	if in := m.Info(); in.Old != first || in.Reason != "delete node n1" || in.Queued != 0 {
		t.Fatalf("queued rotation %+v", in)
	}
}

func TestManualWaitsForActivate(t *testing.T) {
	m := machine(t, activeRing(t), nid(1))
	m.SetParams(Params{Manual: true})
	m.Connected(nid(1), []keys.KeyID{m.Ring().Active().ID}, m.Ring().Active().ID, epoch)
	acts := must(m.Start("rotate key", epoch))
	if got, want := steps(acts), "distributing,next-saved"; got != want {
		t.Fatalf("manual: steps %s, want %s (no update pushed)", got, want)
	}
	if acts := must(m.Tick(epoch.Add(time.Hour))); len(acts) != 0 {
		t.Fatalf("manual rotation acted on a deadline: %s", steps(acts))
	}
	if !m.Info().Deadline.IsZero() || !m.Info().Manual {
		t.Fatalf("info %+v", m.Info())
	}
	next := m.Info().New
	must(m.Ack(nid(1), 0, next, true, epoch))
	if m.Info().Phase != Distributing || m.NodeState(nid(1)) != NodeAcked {
		t.Fatalf("manual ack: phase %s state %s", m.Info().Phase, m.NodeState(nid(1)))
	}
	if _, err := m.Activate(next+1, epoch); !errors.Is(err, ErrNotNext) {
		t.Fatalf("activate wrong key: %v", err)
	}
	acts = must(m.Activate(next, epoch))
	if got, want := steps(acts), "activating,activated,grace,activate"; got != want {
		t.Fatalf("steps %s, want %s", got, want)
	}
	if acts := must(m.Activate(next, epoch)); len(acts) != 0 {
		t.Fatalf("activating the active key again acted: %s", steps(acts))
	}
}

func TestRestoreRepairs(t *testing.T) {
	base := activeRing(t)
	s := newSim(t, 0, 3)
	k, _ := keys.NewKey(s.rnd, epoch, nil)
	withNext, _ := base.AddNext(k)
	activated, _ := withNext.Activate(k.ID)
	old := base.Active().ID
	p := Params{Grace: 5 * time.Second, Timeout: 10 * time.Second}
	cases := []struct {
		name  string
		rec   Record
		ring  *keys.Keyring
		steps string
		phase Phase
	}{
		{"idle with orphan next key", Record{}, withNext, "repair", Idle},
		{"idle with previous key", Record{}, activated, "repair", Idle},
		{"idle with a queued request", Record{Queued: []string{"delete node x"}}, base, "distributing,next-saved", Distributing},
		{"idle with a queued request, nobody to wait for", Record{Queued: []string{"delete node x"}, Behind: []proto.NodeID{nid(1)}}, base, "distributing,next-saved,activating,activated,grace", Grace},
		{"distributing, key not saved", Record{Phase: Distributing, Seq: 1, Old: old, New: k.ID + 1}, base, "distributing,next-saved", Distributing},
		{"distributing, key saved, nobody to wait for", Record{Phase: Distributing, Seq: 1, Old: old, New: k.ID, Behind: []proto.NodeID{nid(1)}}, withNext, "activating,activated,grace", Grace},
		{"distributing, waiting for a node", Record{Phase: Distributing, Seq: 1, Old: old, New: k.ID}, withNext, "", Distributing},
		{"distributing, request arrived", Record{Phase: Distributing, Seq: 1, Old: old, New: k.ID, Queued: []string{"delete node x"}}, withNext, "distributing,next-saved", Distributing},
		{"activating, ring not yet activated", Record{Phase: Activating, Seq: 1, Old: old, New: k.ID}, withNext, "activating,activated,grace", Grace},
		{"activating, ring activated", Record{Phase: Activating, Seq: 1, Old: old, New: k.ID}, activated, "activating,activated,grace", Grace},
		{"grace", Record{Phase: Grace, Seq: 1, Old: old, New: k.ID, GraceUntil: epoch.Add(time.Second)}, activated, "", Grace},
		{"retiring", Record{Phase: Retiring, Seq: 1, Old: old, New: k.ID}, activated, "retiring,retired,idle", Idle},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, acts, err := Restore(s.rnd, p, c.rec, c.ring, []proto.NodeID{nid(1)}, epoch)
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(acts); got != c.steps {
				t.Fatalf("steps %q, want %q", got, c.steps)
			}
			if m.Info().Phase != c.phase {
				t.Fatalf("phase %s, want %s", m.Info().Phase, c.phase)
			}
			if n := m.Ring(); n.Active() == nil {
				t.Fatal("no active key")
			}
		})
	}
	if _, _, err := Restore(s.rnd, p, Record{Phase: Retiring, Seq: 1, Old: old, New: k.ID}, withNext, nil, epoch); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("retiring with an unactivated ring: %v", err)
	}
	if _, _, err := Restore(s.rnd, p, Record{Phase: "bogus"}, base, nil, epoch); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("bogus phase: %v", err)
	}
	if _, _, err := Restore(s.rnd, p, Record{}, keys.NewKeyring(), nil, epoch); !errors.Is(err, keys.ErrNoActive) {
		t.Fatalf("empty ring: %v", err)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := Record{Phase: Grace, Seq: 3, Reason: "delete node n4", Manual: true, Old: 0x0a0b0c0d, New: 0x01020304,
		Started: epoch, GraceUntil: epoch.Add(time.Minute), Behind: []proto.NodeID{nid(2), nid(3)},
		Queued: []string{"rotate key"}}
	data, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := EncodeRecord(got)
	if string(again) != string(data) {
		t.Fatalf("round trip:\n%s\n%s", data, again)
	}
	for _, bad := range []string{
		``, `{}`, `{"format":2,"phase":"idle","seq":0}`, `{"format":1,"phase":"nap","seq":0}`,
		`{"format":1,"phase":"grace","seq":1,"old_key":"0a0b0c0d"}`,
		`{"format":1,"phase":"grace","seq":1,"old_key":"0a0b0c0d","new_key":"0a0b0c0d"}`,
		`{"format":1,"phase":"idle","seq":0,"extra":1}`,
		`{"format":1,"phase":"idle","seq":0}{}`,
		`{"format":1,"phase":"idle","seq":0,"behind":["nope"]}`,
		`{"format":1,"phase":"idle","seq":0,"waiting":[]}`,
		`{"format":1,"phase":"idle","seq":0,"behind":["a0000000-0000-0000-0000-000000000001","a0000000-0000-0000-0000-000000000001"]}`,
		`{"format":1,"phase":"idle","seq":0,"old_key":"00000000"}`,
	} {
		if _, err := DecodeRecord([]byte(bad)); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("DecodeRecord(%q) = %v, want ErrInvalidRecord", bad, err)
		}
	}
}

func TestMomApply(t *testing.T) {
	ring := activeRing(t)
	s := newSim(t, 0, 4)
	k1, _ := keys.NewKey(s.rnd, epoch, nil)
	k2, _ := keys.NewKey(s.rnd, epoch, nil)
	r, changed, err := ApplyUpdate(ring, k1)
	if err != nil || !changed || r.Next().ID != k1.ID {
		t.Fatalf("update: %v %v", changed, err)
	}
	if again, changed, _ := ApplyUpdate(r, k1); changed || again != r {
		t.Fatal("repeated update changed the ring")
	}
	r2, _, err := ApplyUpdate(r, k2)
	if err != nil || r2.Next().ID != k2.ID || r2.Lookup(k1.ID) != nil {
		t.Fatalf("update replacing an abandoned next key: %s %v", ringString(r2), err)
	}
	if _, _, err := ApplyActivate(r2, k1.ID); !errors.Is(err, ErrKeyNotHeld) {
		t.Fatalf("activate a key not held: %v", err)
	}
	r3, changed, err := ApplyActivate(r2, k2.ID)
	if err != nil || !changed || r3.Active().ID != k2.ID || r3.Lookup(ring.Active().ID).State != keys.StatePrevious {
		t.Fatalf("activate: %s %v", ringString(r3), err)
	}
	if again, changed, _ := ApplyActivate(r3, k2.ID); changed || again != r3 {
		t.Fatal("repeated activate changed the ring")
	}
	if _, _, err := ApplyRetire(r3, k2.ID); !errors.Is(err, keys.ErrBadTransition) {
		t.Fatalf("retire the active key: %v", err)
	}
	r4, changed, err := ApplyRetire(r3, ring.Active().ID)
	if err != nil || !changed || r4.Len() != 1 {
		t.Fatalf("retire: %s %v", ringString(r4), err)
	}
	if again, changed, _ := ApplyRetire(r4, ring.Active().ID); changed || again != r4 {
		t.Fatal("repeated retire changed the ring")
	}
}

// TestStaleWelcomeIsCorrected: a node whose Welcome was built before the
// keyring moved on gets what it missed as soon as it is registered.
func TestStaleWelcomeIsCorrected(t *testing.T) {
	m := machine(t, activeRing(t), nid(1), nid(2))
	old := m.Ring().Active().ID
	m.Connected(nid(1), []keys.KeyID{old}, old, epoch)
	must(m.Start("rotate key", epoch))
	newKey := m.Info().New
	// Welcome built before the start: holds only the old key.
	acts := must(m.Connected(nid(2), []keys.KeyID{old}, old, epoch))
	if got := steps(acts); got != "update" || acts[0].(SendUpdate).To[0] != nid(2) || acts[0].(SendUpdate).Key.ID != newKey {
		t.Fatalf("distributing, stale welcome: steps %s", got)
	}
	if m.NodeState(nid(2)) != NodePending {
		t.Fatalf("state %s, want pending", m.NodeState(nid(2)))
	}
	must(m.Ack(nid(1), 0, newKey, true, epoch))
	acts = must(m.Ack(nid(2), 0, newKey, true, epoch))
	if !strings.HasPrefix(steps(acts), "activating") {
		t.Fatalf("steps %s", steps(acts))
	}
	must(m.Disconnected(nid(2), epoch))
	// Welcome built before the activation: new key held as next.
	acts = must(m.Connected(nid(2), []keys.KeyID{old, newKey}, old, epoch))
	if got := steps(acts); got != "activate" || acts[0].(SendActivate).Key != newKey {
		t.Fatalf("grace, stale welcome: steps %s", got)
	}
	must(m.Tick(epoch.Add(time.Minute)))
	must(m.Disconnected(nid(2), epoch))
	// Welcome built before the retirement: still holds the old key.
	acts = must(m.Connected(nid(2), []keys.KeyID{newKey, old}, newKey, epoch))
	if got := steps(acts); got != "retire" || acts[0].(SendRetire).Key != old {
		t.Fatalf("idle, stale welcome: steps %s", got)
	}
	if m.NodeState(nid(2)) != NodeCurrent {
		t.Fatalf("state %s, want current", m.NodeState(nid(2)))
	}
}

func TestCancelWithdrawsARequest(t *testing.T) {
	m := machine(t, activeRing(t))
	m.Request("delete node x")
	if acts := m.Cancel("delete node x"); steps(acts) != "queued" || len(m.Record().Queued) != 0 {
		t.Fatalf("cancel: %s %v", steps(acts), m.Record().Queued)
	}
	if acts := m.Cancel("delete node x"); len(acts) != 0 {
		t.Fatalf("second cancel acted: %s", steps(acts))
	}
	if acts := must(m.Start("", epoch)); len(acts) != 0 {
		t.Fatalf("start with nothing queued acted: %s", steps(acts))
	}
}

// TestSaveRecordChanges: each SaveRecord carries the record without its
// behind list and the nodes that entered or left the list since the
// previous one, so that a shell applying them in order holds the list the
// machine holds, without one save carrying the whole list.
func TestSaveRecordChanges(t *testing.T) {
	s := newSim(t, 0, 2)
	ring := activeRing(t)
	// Node 9 is behind in the record but no longer enrolled: dropped at
	// the next save.
	disk := Record{Behind: []proto.NodeID{nid(9)}}
	m, _, err := Restore(s.rnd, Params{Grace: 5 * time.Second, Timeout: 10 * time.Second}, disk, ring, []proto.NodeID{nid(1), nid(2), nid(3)}, epoch)
	if err != nil {
		t.Fatal(err)
	}
	apply := func(acts []Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			if a, ok := a.(SaveRecord); ok {
				if a.Record.Behind != nil {
					t.Fatalf("step %s: a SaveRecord carries the whole list %v", a.Step(), a.Record.Behind)
				}
				disk = a.Apply(disk)
				if a.Behind != len(disk.Behind) {
					t.Fatalf("step %s: count %d, list %v", a.Step(), a.Behind, disk.Behind)
				}
			}
		}
	}
	same := func(what string) {
		t.Helper()
		if got, want := fmt.Sprint(disk.Behind), fmt.Sprint(m.Record().Behind); got != want {
			t.Fatalf("%s: persisted behind %s, machine %s", what, got, want)
		}
	}
	active := m.Ring().Active().ID
	apply(m.Connected(nid(1), []keys.KeyID{active}, active, epoch))
	apply(m.Start("rotate key", epoch))
	same("distributing") // 2 and 3 behind, 9 dropped
	if len(disk.Behind) != 2 {
		t.Fatalf("behind %v, want nodes 2 and 3", disk.Behind)
	}
	apply(m.Ack(nid(1), m.Info().Seq, m.Info().New, true, epoch))
	same("grace")
	apply(m.NodeRemoved(nid(2), epoch))
	apply(m.Start("delete node 2", epoch))
	same("queued after a delete")
	cur := m.Ring().Active().ID
	var held []keys.KeyID
	for _, k := range m.Ring().Keys() {
		held = append(held, k.ID)
	}
	apply(m.Connected(nid(3), held, cur, epoch))
	same("caught up")
	if len(disk.Behind) != 0 {
		t.Fatalf("behind %v after every node caught up or left", disk.Behind)
	}
}
