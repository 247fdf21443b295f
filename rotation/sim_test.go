package rotation

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// sim is a server running the machine and MOMs applying its messages, all
// in memory and deterministic. It can crash the server after any action
// (the machine and everything not persisted is lost; MOMs reconnect and get
// a Welcome) and crash a MOM (its unpersisted state is lost).
type sim struct {
	t      *testing.T
	now    time.Time
	rnd    *rand.ChaCha8
	params Params
	manual bool

	disk struct { // what the server persisted
		rec  []byte
		ring []byte
	}
	live *keys.Keyring // the server's live keyring (its Holder)
	m    *Machine
	moms map[proto.NodeID]*simMom
	ids  []proto.NodeID // moms in creation order

	acks        []func() // acknowledgements in flight to the server
	pendingExec []Action // actions of the message being delivered
	executed    int      // actions executed so far, across restarts
	crashAt     map[int]bool
	crashes     int
	momCrash    map[int]proto.NodeID // crash this MOM after that many actions
	trace       []string
}

type simMom struct {
	id      proto.NodeID
	ring    *keys.Keyring // in memory
	disk    *keys.Keyring // persisted
	up      bool          // control connection established
	running bool          // process running
	deleted bool
	// failStore makes the MOM answer KeyUpdate with a failed KeyAck.
	failStore bool
	// seen records every key id the MOM ever held.
	seen map[keys.KeyID]bool
}

func (mm *simMom) set(r *keys.Keyring) {
	mm.disk, mm.ring = r, r
	for _, k := range r.Keys() {
		mm.seen[k.ID] = true
	}
}

var epoch = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

func nid(i int) proto.NodeID {
	var n proto.NodeID
	n[0], n[15] = 0xa0, byte(i)
	n[14] = byte(i >> 8)
	return n
}

func newSim(t *testing.T, nodes int, seed uint64) *sim {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	sm := &sim{t: t, now: epoch, rnd: rand.NewChaCha8(s), params: Params{Grace: 5 * time.Second, Timeout: 10 * time.Second},
		moms: map[proto.NodeID]*simMom{}, crashAt: map[int]bool{}, momCrash: map[int]proto.NodeID{}}
	k, err := keys.NewKey(sm.rnd, sm.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sm.persistRing(ring)
	rec, _ := EncodeRecord(Record{})
	sm.disk.rec = rec
	for i := range nodes {
		id := nid(i + 1)
		sm.moms[id] = &simMom{id: id, running: true, seen: map[keys.KeyID]bool{}}
		sm.ids = append(sm.ids, id)
	}
	sm.boot()
	return sm
}

func (s *sim) persistRing(r *keys.Keyring) {
	data, err := keys.EncodeKeyring(r)
	if err != nil {
		s.t.Fatal(err)
	}
	s.disk.ring = data
	s.live = r
}

func (s *sim) logf(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("[%3d] ", s.executed)+fmt.Sprintf(format, args...))
}

func (s *sim) fatalf(format string, args ...any) {
	s.t.Helper()
	for _, l := range s.trace {
		s.t.Log(l)
	}
	s.t.Fatalf(format, args...)
}

// boot (re)starts the server from disk; every running MOM reconnects.
func (s *sim) boot() {
	for {
		rec, err := DecodeRecord(s.disk.rec)
		if err != nil {
			s.fatalf("decode persisted record: %v", err)
		}
		ring, err := keys.DecodeKeyring(s.disk.ring)
		if err != nil {
			s.fatalf("decode persisted keyring: %v", err)
		}
		s.live = ring
		var nodes []proto.NodeID
		for _, id := range s.ids {
			if !s.moms[id].deleted {
				nodes = append(nodes, id)
			}
		}
		m, acts, err := Restore(s.rnd, s.params, rec, ring, nodes, s.now)
		if err != nil {
			s.fatalf("restore: %v", err)
		}
		s.m = m
		s.logf("server boot: phase %s", rec.Phase)
		if s.exec(acts) {
			continue // crashed again while resuming
		}
		crashed := false
		for _, id := range s.ids {
			if mm := s.moms[id]; mm.running && !mm.deleted && !mm.up {
				if s.connect(mm) {
					crashed = true
					break
				}
			}
		}
		if !crashed {
			return
		}
	}
}

// crashServer loses everything not persisted: the machine, connections,
// acknowledgements in flight.
func (s *sim) crashServer() {
	s.crashes++
	s.logf("server CRASH")
	s.m = nil
	s.acks = nil
	for _, mm := range s.moms {
		mm.up = false
	}
}

// welcome is what the server's Welcome gives a node: every key of the live
// ring (automatic), or only the keys the node already holds, with the
// server's states (manual, for a node that is not new).
func (s *sim) welcome(mm *simMom) (*keys.Keyring, bool) {
	if !s.manual || mm.ring == nil {
		return s.live, true
	}
	out := keys.NewKeyring()
	for _, k := range s.live.Keys() {
		if mm.ring.Lookup(k.ID) != nil {
			var err error
			if out, err = out.WithKey(k); err != nil {
				s.fatalf("welcome: %v", err)
			}
		}
	}
	if out.Active() == nil {
		return nil, false // the MOM refuses a Welcome without an active key
	}
	return out, true
}

// connect runs a MOM's handshake; it reports whether the server crashed.
func (s *sim) connect(mm *simMom) bool {
	r, ok := s.welcome(mm)
	if !ok {
		s.logf("mom %d: welcome without active key, stays disconnected", mm.id[15])
		return false
	}
	mm.set(r)
	mm.up = true
	var held []keys.KeyID
	for _, k := range r.Keys() {
		held = append(held, k.ID)
	}
	s.logf("mom %d connected holding %v", mm.id[15], held)
	acts, err := s.m.Connected(mm.id, held, r.Active().ID, s.now)
	if err != nil {
		s.fatalf("connected: %v", err)
	}
	return s.exec(acts)
}

func (s *sim) disconnect(mm *simMom) bool {
	if !mm.up {
		return false
	}
	mm.up = false
	s.logf("mom %d disconnected", mm.id[15])
	acts, err := s.m.Disconnected(mm.id, s.now)
	if err != nil {
		s.fatalf("disconnected: %v", err)
	}
	return s.exec(acts)
}

// exec runs actions in order; it reports whether the server crashed (then
// the remaining actions are lost).
func (s *sim) exec(acts []Action) bool {
	for _, a := range acts {
		s.executed++
		s.apply(a)
		if id, ok := s.momCrash[s.executed]; ok {
			mm := s.moms[id]
			s.logf("mom %d CRASH", id[15])
			mm.ring = mm.disk
			mm.running = false
			s.disconnectNoExec(mm)
		}
		if s.crashAt[s.executed] {
			s.crashServer()
			return true
		}
	}
	return false
}

// disconnectNoExec records a MOM's disconnection to be reported to the
// server with the next event batch (a crash is noticed asynchronously).
func (s *sim) disconnectNoExec(mm *simMom) {
	if !mm.up {
		return
	}
	mm.up = false
	id := mm.id
	s.acks = append(s.acks, func() {
		acts, err := s.m.Disconnected(id, s.now)
		if err != nil {
			s.fatalf("disconnected: %v", err)
		}
		s.pendingExec = append(s.pendingExec, acts...)
	})
}

func (s *sim) apply(a Action) {
	switch a := a.(type) {
	case SaveRecord:
		var prev Record
		if s.disk.rec != nil {
			var err error
			if prev, err = DecodeRecord(s.disk.rec); err != nil {
				s.fatalf("decode record: %v", err)
			}
		}
		data, err := EncodeRecord(a.Apply(prev))
		if err != nil {
			s.fatalf("encode record: %v", err)
		}
		s.disk.rec = data
		s.logf("save record %s (%s)", a.Record.Phase, a.Step())
	case SaveRing:
		s.persistRing(a.Ring)
		s.logf("save ring %s", ringString(a.Ring))
	case SendUpdate:
		for _, id := range a.To {
			mm := s.target(id, a)
			if mm == nil {
				continue
			}
			if mm.failStore {
				s.queueAck(id, a.Seq, a.Key.ID, false)
				continue
			}
			r, _, err := ApplyUpdate(mm.ring, a.Key)
			if err != nil {
				s.fatalf("mom %d update: %v", id[15], err)
			}
			mm.set(r)
			s.queueAck(id, a.Seq, a.Key.ID, true)
		}
		s.logf("send update %s to %d", a.Key.ID, len(a.To))
	case SendActivate:
		for _, id := range a.To {
			mm := s.target(id, a)
			if mm == nil {
				continue
			}
			r, _, err := ApplyActivate(mm.ring, a.Key)
			if errors.Is(err, ErrKeyNotHeld) {
				// The MOM drops the connection to resynchronise.
				s.logf("mom %d lacks %s: reconnects", id[15], a.Key)
				s.disconnectNoExec(mm)
				continue
			}
			if err != nil {
				s.fatalf("mom %d activate: %v", id[15], err)
			}
			mm.set(r)
		}
		s.logf("send activate %s to %d", a.Key, len(a.To))
	case SendRetire:
		for _, id := range a.To {
			mm := s.target(id, a)
			if mm == nil {
				continue
			}
			r, _, err := ApplyRetire(mm.ring, a.Key)
			if err != nil {
				s.fatalf("mom %d retire: %v", id[15], err)
			}
			mm.set(r)
		}
		s.logf("send retire %s to %d", a.Key, len(a.To))
	default:
		s.fatalf("unknown action %T", a)
	}
}

// target checks that a message goes to a connected, non-deleted node.
func (s *sim) target(id proto.NodeID, a Action) *simMom {
	mm := s.moms[id]
	if mm == nil || mm.deleted {
		s.fatalf("%s sent to deleted or unknown node %x", a.Step(), id)
	}
	if !mm.up {
		// Disconnected but the server has not noticed yet: lost.
		return nil
	}
	return mm
}

func (s *sim) queueAck(id proto.NodeID, seq uint64, key keys.KeyID, ok bool) {
	s.acks = append(s.acks, func() {
		if !s.moms[id].up {
			return // the connection died with the ack in it
		}
		acts, err := s.m.Ack(id, seq, key, ok, s.now)
		if err != nil {
			s.fatalf("ack: %v", err)
		}
		s.pendingExec = append(s.pendingExec, acts...)
	})
}

// drain delivers in-flight messages to the server, one at a time; it
// reports whether the server crashed.
func (s *sim) drain() bool {
	for len(s.acks) > 0 {
		f := s.acks[0]
		s.acks = s.acks[1:]
		s.pendingExec = nil
		f()
		acts := s.pendingExec
		s.pendingExec = nil
		if s.exec(acts) {
			return true
		}
	}
	return false
}

// step delivers messages, restarts crashed MOMs, reconnects dropped ones,
// advances the clock by one second and ticks; after a server crash it
// boots the server again.
func (s *sim) step() {
	if s.drain() {
		s.boot()
		return
	}
	for _, id := range s.ids {
		mm := s.moms[id]
		if mm.deleted {
			continue
		}
		if !mm.running {
			mm.running = true
			s.logf("mom %d restarts", id[15])
		}
		if !mm.up {
			if s.connect(mm) {
				s.boot()
				return
			}
		}
	}
	s.now = s.now.Add(time.Second)
	acts, err := s.m.Tick(s.now)
	if err != nil {
		s.fatalf("tick: %v", err)
	}
	if s.exec(acts) {
		s.boot()
	}
}

// do runs an event against the machine; a crash boots the server again.
func (s *sim) do(what string, f func() ([]Action, error)) {
	s.logf("event: %s", what)
	acts, err := f()
	if err != nil {
		s.fatalf("%s: %v", what, err)
	}
	if s.exec(acts) {
		s.boot()
	}
}

// settle steps until the rotation is over and nothing is in flight.
func (s *sim) settle() {
	for range 200 {
		if s.m.Info().Phase == Idle && len(s.acks) == 0 && s.allUp() {
			return
		}
		s.step()
	}
	s.fatalf("no convergence after 200 steps: phase %s", s.m.Info().Phase)
}

func (s *sim) allUp() bool {
	for _, mm := range s.moms {
		if !mm.deleted && (!mm.up || !mm.running) {
			return false
		}
	}
	return true
}

func ringString(r *keys.Keyring) string {
	var parts []string
	for _, k := range r.Keys() {
		parts = append(parts, k.ID.String()+":"+k.State.String())
	}
	sort.Strings(parts)
	return fmt.Sprint(parts)
}

// checkConverged: one active key, no other key anywhere, every live MOM
// holds exactly the server's keyring, the persisted state agrees with the
// machine, and no deleted node saw a key after its deletion (seenAtDelete
// is how many keys it had seen then).
func (s *sim) checkConverged(seenAtDelete map[proto.NodeID]int, initial keys.KeyID) {
	s.t.Helper()
	ring := s.m.Ring()
	if ring.Len() != 1 || ring.Active() == nil {
		s.fatalf("server keyring %s: want exactly one active key", ringString(ring))
	}
	active := ring.Active().ID
	if active == initial {
		s.fatalf("no rotation happened: active key is still %s", active)
	}
	disk, err := keys.DecodeKeyring(s.disk.ring)
	if err != nil || ringString(disk) != ringString(ring) {
		s.fatalf("persisted keyring %v differs from the machine's %s (%v)", ringString(disk), ringString(ring), err)
	}
	rec, err := DecodeRecord(s.disk.rec)
	if err != nil || rec.Phase != Idle || len(rec.Queued) != 0 || len(rec.Behind) != 0 {
		s.fatalf("persisted record %+v (%v): want idle, nothing queued, nobody behind", rec, err)
	}
	for _, id := range s.ids {
		mm := s.moms[id]
		if mm.deleted {
			continue
		}
		if ringString(mm.ring) != ringString(ring) || ringString(mm.disk) != ringString(ring) {
			s.fatalf("mom %d holds %s (disk %s), server %s", id[15], ringString(mm.ring), ringString(mm.disk), ringString(ring))
		}
		if st := s.m.NodeState(id); st != NodeCurrent {
			s.fatalf("mom %d state %q, want current", id[15], st)
		}
	}
	for id, n := range seenAtDelete {
		if len(s.moms[id].seen) != n || s.moms[id].seen[active] {
			s.fatalf("deleted mom %d saw keys after its deletion: %v", id[15], s.moms[id].seen)
		}
	}
}
