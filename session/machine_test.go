package session

import (
	"errors"
	"testing"
	"time"
)

// side is a Machine with what its actions did: the keys it installed and
// the control frames it sent, in order.
type side struct {
	m          *Machine
	send, recv [KeySize]byte
	sendGen    uint64
	recvGen    uint64
	outbox     []Control
	closed     error
	sent, recd uint64 // record counters, as the record layer keeps them
}

func (s *side) apply(t *testing.T, acts Actions) {
	t.Helper()
	for i := 0; i < acts.Len(); i++ {
		a := acts.At(i)
		switch a.Kind {
		case SendControl:
			s.outbox = append(s.outbox, a.Control)
			s.sent++
		case InstallSend:
			s.send, s.sendGen, s.sent = a.Key, a.Gen, 0
		case InstallRecv:
			s.recv, s.recvGen, s.recd = a.Key, a.Gen, 0
		case Close:
			s.closed = a.Err
		default:
			t.Fatalf("action kind %d", a.Kind)
		}
	}
}

func (s *side) check(t *testing.T, now time.Time) {
	t.Helper()
	s.apply(t, s.m.Check(now, s.sent, s.recd))
}

// deliver hands every control frame in from's outbox to to, in order.
func deliver(t *testing.T, from, to *side, now time.Time) {
	t.Helper()
	box := from.outbox
	from.outbox = nil
	for _, c := range box {
		to.recd++
		to.apply(t, to.m.Receive(c, now))
	}
}

func machinePair(t *testing.T, p Protection, lim Limits, now time.Time) (a, b *side) {
	t.Helper()
	var s0 [KeySize]byte
	for i := range s0 {
		s0[i] = byte(i)
	}
	s1 := s0
	ma, acts, err := NewMachine(RoleInitiator, p, &s0, now, lim, &countingRand{n: 1})
	if err != nil {
		t.Fatal(err)
	}
	a = &side{m: ma}
	a.apply(t, acts)
	mb, acts, err := NewMachine(RoleResponder, p, &s1, now, lim, &countingRand{n: 2 << 40})
	if err != nil {
		t.Fatal(err)
	}
	b = &side{m: mb}
	b.apply(t, acts)
	agree(t, a, b)
	return a, b
}

// agree fails unless each side's send key is the other's receive key.
func agree(t *testing.T, a, b *side) {
	t.Helper()
	if a.send != b.recv || b.send != a.recv || a.send == a.recv {
		t.Fatalf("keys disagree: a send %x recv %x, b send %x recv %x", a.send[:4], a.recv[:4], b.send[:4], b.recv[:4])
	}
}

func kinds(cs []Control) []string {
	var out []string
	for _, c := range cs {
		switch c.Type {
		case RekeyType:
			out = append(out, "Rekey")
		case SwitchType:
			out = append(out, "Switch")
		default:
			out = append(out, c.Type.String())
		}
	}
	return out
}

// TestMachineRekey: one side starts at the age limit; the other answers;
// both end a generation further with matching fresh keys, and nothing is
// sent that the flow of section 6.6 does not name.
func TestMachineRekey(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			now := epoch
			a, b := machinePair(t, p, Limits{}, now)
			old := a.send
			a.check(t, now.Add(DefaultRekeyAfterTime-time.Nanosecond))
			if len(a.outbox) != 0 {
				t.Fatalf("rekey before the limit: %v", kinds(a.outbox))
			}
			now = now.Add(DefaultRekeyAfterTime)
			a.check(t, now)
			if len(a.outbox) != 1 || a.outbox[0].Type != RekeyType || a.outbox[0].Gen != 1 || isZero(&a.outbox[0].Ephemeral) == (p == Encrypt) {
				t.Fatalf("a sent %+v", a.outbox)
			}
			a.check(t, now.Add(time.Second)) // a rekey in progress is not restarted
			if len(a.outbox) != 1 {
				t.Fatalf("rekey restarted: %v", kinds(a.outbox))
			}
			deliver(t, a, b, now)
			if got := kinds(b.outbox); len(got) != 2 || got[0] != "Rekey" || got[1] != "Switch" || b.sendGen != 1 || b.recvGen != 0 {
				t.Fatalf("b answered %v, send gen %d, recv gen %d", got, b.sendGen, b.recvGen)
			}
			deliver(t, b, a, now)
			if len(a.outbox) != 1 || a.outbox[0].Type != SwitchType || a.sendGen != 1 || a.recvGen != 1 {
				t.Fatalf("a answered %v, gens %d/%d", kinds(a.outbox), a.sendGen, a.recvGen)
			}
			deliver(t, a, b, now)
			agree(t, a, b)
			if a.send == old || a.m.Generation() != 1 || b.m.Generation() != 1 || a.m.Rekeys() != 1 || a.m.Rekeying() || b.m.Rekeying() {
				t.Fatalf("after the rekey: gens %d %d, rekeys %d", a.m.Generation(), b.m.Generation(), a.m.Rekeys())
			}
			if a.m.secret != b.m.secret || a.m.secret == [KeySize]byte{} {
				t.Fatal("secrets differ after the rekey")
			}
			if !a.m.NextDeadline().Equal(now.Add(DefaultRekeyAfterTime)) {
				t.Fatalf("next deadline %v", a.m.NextDeadline())
			}
		})
	}
}

// TestMachineRekeyRace: both sides start a rekey at the same moment; each
// takes the other's Rekey as the answer, and they agree.
func TestMachineRekeyRace(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			now := epoch.Add(DefaultRekeyAfterTime)
			a, b := machinePair(t, p, Limits{}, epoch)
			a.check(t, now)
			b.check(t, now)
			if len(a.outbox) != 1 || len(b.outbox) != 1 {
				t.Fatalf("outboxes %v %v", kinds(a.outbox), kinds(b.outbox))
			}
			// Both Rekeys cross; each side answers with a Switch only.
			ra, rb := a.outbox, b.outbox
			a.outbox, b.outbox = nil, nil
			for _, c := range rb {
				a.apply(t, a.m.Receive(c, now))
			}
			for _, c := range ra {
				b.apply(t, b.m.Receive(c, now))
			}
			if kinds(a.outbox)[0] != "Switch" || kinds(b.outbox)[0] != "Switch" || len(a.outbox) != 1 || len(b.outbox) != 1 {
				t.Fatalf("answers %v %v", kinds(a.outbox), kinds(b.outbox))
			}
			deliver(t, a, b, now)
			deliver(t, b, a, now)
			agree(t, a, b)
			if a.m.Generation() != 1 || b.m.Generation() != 1 || a.m.secret != b.m.secret {
				t.Fatal("race ended apart")
			}
			// And a normal rekey still works after a race.
			a.check(t, now.Add(DefaultRekeyAfterTime))
			deliver(t, a, b, now)
			deliver(t, b, a, now)
			deliver(t, a, b, now)
			agree(t, a, b)
			if a.m.Generation() != 2 || b.m.Generation() != 2 {
				t.Fatalf("generations %d %d", a.m.Generation(), b.m.Generation())
			}
		})
	}
}

// TestMachineManyGenerations: ten rekeys in a row, alternating the side
// that starts; every generation's keys are new.
func TestMachineManyGenerations(t *testing.T) {
	now := epoch
	a, b := machinePair(t, Encrypt, Limits{}, now)
	seen := map[[KeySize]byte]bool{a.send: true, b.send: true}
	for g := uint64(1); g <= 10; g++ {
		now = now.Add(DefaultRekeyAfterTime)
		first, second := a, b
		if g%2 == 0 {
			first, second = b, a
		}
		first.check(t, now)
		deliver(t, first, second, now)
		deliver(t, second, first, now)
		deliver(t, first, second, now)
		agree(t, a, b)
		if seen[a.send] || seen[b.send] || a.m.Generation() != g {
			t.Fatalf("generation %d: reused keys or generation %d", g, a.m.Generation())
		}
		seen[a.send], seen[b.send] = true, true
	}
}

// TestMachineRekeyOnRecords: the record limits start a rekey and close.
func TestMachineRekeyOnRecords(t *testing.T) {
	lim := Limits{RekeyAfterRecords: 100, RejectAfterRecords: 150}
	a, _ := machinePair(t, Auth, lim, epoch)
	if a.m.Due(epoch, 99, 99) {
		t.Fatal("due below the record limit")
	}
	if !a.m.Due(epoch, 100, 0) || !a.m.Due(epoch, 0, 100) {
		t.Fatal("not due at the record limit")
	}
	a.apply(t, a.m.Check(epoch, 0, 100))
	if len(a.outbox) != 1 || a.outbox[0].Type != RekeyType {
		t.Fatalf("no rekey at the received-record limit: %v", kinds(a.outbox))
	}
	a.apply(t, a.m.Check(epoch, 149, 0))
	if a.closed != nil {
		t.Fatalf("closed below the reject limit: %v", a.closed)
	}
	a.apply(t, a.m.Check(epoch, 150, 0))
	if !errors.Is(a.closed, ErrExpired) {
		t.Fatalf("at the reject limit: %v, want ErrExpired", a.closed)
	}
}

// TestMachineExpiresWithoutAnswer: a peer that never answers a rekey (it
// crashed, hangs, or does not read) gets the session closed at the reject
// age, not before; and Due wakes the caller at that moment.
func TestMachineExpiresWithoutAnswer(t *testing.T) {
	a, _ := machinePair(t, Encrypt, Limits{}, epoch)
	a.check(t, epoch.Add(DefaultRekeyAfterTime))
	if !a.m.Rekeying() || !a.m.NextDeadline().Equal(epoch.Add(DefaultRejectAfterTime)) {
		t.Fatalf("rekeying %v, deadline %v", a.m.Rekeying(), a.m.NextDeadline())
	}
	before := epoch.Add(DefaultRejectAfterTime - time.Nanosecond)
	if a.m.Due(before, 0, 0) {
		t.Fatal("due before the reject age")
	}
	a.check(t, before)
	if a.closed != nil {
		t.Fatalf("closed before the reject age: %v", a.closed)
	}
	at := epoch.Add(DefaultRejectAfterTime)
	if !a.m.Due(at, 0, 0) {
		t.Fatal("not due at the reject age")
	}
	a.check(t, at)
	if !errors.Is(a.closed, ErrExpired) || !errors.Is(a.m.Err(), ErrExpired) {
		t.Fatalf("at the reject age: %v, want ErrExpired", a.closed)
	}
	// Closed is final: every later event repeats the reason.
	a.closed = nil
	a.apply(t, a.m.Receive(Control{Type: SwitchType, Gen: 1}, at))
	if !errors.Is(a.closed, ErrExpired) || !a.m.Due(at, 0, 0) {
		t.Fatalf("after close: %v", a.closed)
	}
}

// TestMachineIdleSideStillExpires: a side that never starts a rekey itself
// (it only answers) is still bounded: its own age limits apply to it.
func TestMachineIdleSideStillExpires(t *testing.T) {
	_, b := machinePair(t, Auth, Limits{}, epoch)
	b.check(t, epoch.Add(DefaultRejectAfterTime+time.Hour))
	if !errors.Is(b.closed, ErrExpired) {
		t.Fatalf("keys an hour past the limit: %v", b.closed)
	}
}

// TestMachineProtocolErrors: control frames out of order are ErrProtocol.
func TestMachineProtocolErrors(t *testing.T) {
	var pub [32]byte
	pub[0] = 9 // the base point: a valid public key
	lowOrder := [32]byte{1}
	cases := []struct {
		name  string
		prot  Protection
		setup func(t *testing.T, a, b *side)
		c     Control
	}{
		{"switch with no rekey", Encrypt, nil, Control{Type: SwitchType, Gen: 1}},
		{"rekey skipping a generation", Encrypt, nil, Control{Type: RekeyType, Gen: 2, Ephemeral: pub}},
		{"rekey to generation 0", Encrypt, nil, Control{Type: RekeyType, Gen: 0, Ephemeral: pub}},
		{"encrypt rekey without a key", Encrypt, nil, Control{Type: RekeyType, Gen: 1}},
		{"auth rekey with a key", Auth, nil, Control{Type: RekeyType, Gen: 1, Ephemeral: pub}},
		{"encrypt rekey with a low-order key", Encrypt, nil, Control{Type: RekeyType, Gen: 1, Ephemeral: lowOrder}},
		{"second rekey", Encrypt, func(t *testing.T, a, b *side) {
			a.apply(t, a.m.Receive(Control{Type: RekeyType, Gen: 1, Ephemeral: pub}, epoch))
		}, Control{Type: RekeyType, Gen: 1, Ephemeral: pub}},
		{"switch to the wrong generation", Encrypt, func(t *testing.T, a, b *side) {
			a.apply(t, a.m.Receive(Control{Type: RekeyType, Gen: 1, Ephemeral: pub}, epoch))
		}, Control{Type: SwitchType, Gen: 2}},
		{"switch before our rekey was answered", Encrypt, func(t *testing.T, a, b *side) {
			a.check(t, epoch.Add(DefaultRekeyAfterTime))
		}, Control{Type: SwitchType, Gen: 1}},
		{"unknown control type", Encrypt, nil, Control{Type: 0x63, Gen: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := machinePair(t, c.prot, Limits{}, epoch)
			if c.setup != nil {
				c.setup(t, a, b)
			}
			a.apply(t, a.m.Receive(c.c, epoch))
			if !errors.Is(a.closed, ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", a.closed)
			}
		})
	}
}

// TestMachineRandFailure: a rekey that cannot draw its ephemeral key closes
// the session rather than reuse anything.
func TestMachineRandFailure(t *testing.T) {
	var s0 [KeySize]byte
	m, _, err := NewMachine(RoleInitiator, Encrypt, &s0, epoch, Limits{}, &fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	acts := m.Check(epoch.Add(DefaultRekeyAfterTime), 0, 0)
	if acts.Len() != 1 || acts.At(0).Kind != Close || !errors.Is(acts.At(0).Err, errShortRand) {
		t.Fatalf("actions %d, first %+v", acts.Len(), acts.At(0))
	}
}

func TestNewMachineRefusals(t *testing.T) {
	var s0 [KeySize]byte
	for name, c := range map[string]struct {
		role Role
		prot Protection
		lim  Limits
	}{
		"role 0":                 {0, Auth, Limits{}},
		"protection none":        {RoleInitiator, None, Limits{}},
		"rekey after reject":     {RoleInitiator, Auth, Limits{RekeyAfterTime: time.Hour}},
		"rekey records past":     {RoleInitiator, Auth, Limits{RekeyAfterRecords: DefaultRejectAfterRecords}},
		"negative rekey time":    {RoleInitiator, Auth, Limits{RekeyAfterTime: -1}},
		"record cap too small":   {RoleInitiator, Auth, Limits{MaxRecord: MinRecordSize}},
		"record cap above limit": {RoleInitiator, Auth, Limits{MaxRecord: MaxRecordSize + 1}},
	} {
		if _, _, err := NewMachine(c.role, c.prot, &s0, epoch, c.lim, &countingRand{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
