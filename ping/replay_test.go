package ping

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
)

// The window tests drive the guard directly with stamps: what VerifyPing
// passes it after checks 1 to 7.

var t0 = uint64(epoch.UnixNano())

func clockAt(ns uint64) func() time.Time {
	return func() time.Time { return time.Unix(0, int64(ns)) }
}

func advance(g *Guard, node proto.NodeID, ts uint64) error {
	return g.Advance(node, ts, clockAt(t0), false)
}

// TestWindowOutOfOrderAdmittedOnce: WindowCount+1 PINGs stamped together
// (one sender's concurrent swaps) arrive in every order tried: all are
// admitted, and a second copy of each is refused.
func TestWindowOutOfOrderAdmittedOnce(t *testing.T) {
	stamps := make([]uint64, WindowCount+1)
	for i := range stamps {
		stamps[i] = t0 + uint64(i)*uint64(time.Millisecond)
	}
	orders := map[string][]uint64{
		"in order": slices.Clone(stamps),
		"reversed": reversed(stamps),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		p := slices.Clone(stamps)
		rng.Shuffle(len(p), func(a, b int) { p[a], p[b] = p[b], p[a] })
		orders["shuffled "+string(rune('a'+i))] = p
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			g := NewGuard(GuardConfig{}, nil)
			n := nodeID(2)
			for _, ts := range order {
				if err := advance(g, n, ts); err != nil {
					t.Fatalf("stamp %d: %v", ts-t0, err)
				}
			}
			for _, ts := range order {
				if err := advance(g, n, ts); !errors.Is(err, ErrReplay) {
					t.Fatalf("second copy of %d: got %v, want ErrReplay", ts-t0, err)
				}
			}
		})
	}
}

func reversed(s []uint64) []uint64 {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

// TestWindowConcurrentVerifiers: many goroutines deliver the same set of
// stamps, each twice, in different orders: each stamp is admitted exactly
// once.
func TestWindowConcurrentVerifiers(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(3)
	const count = WindowCount
	var admitted [count]atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			order := rng.Perm(count)
			for _, i := range append(order, order...) {
				if err := advance(g, n, t0+uint64(i)+1); err == nil {
					admitted[i].Add(1)
				} else if !errors.Is(err, ErrReplay) {
					t.Errorf("stamp %d: %v", i, err)
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	for i := range admitted {
		if got := admitted[i].Load(); got != 1 {
			t.Fatalf("stamp %d admitted %d times", i, got)
		}
	}
}

// TestWindowTimeBound: a stamp more than WindowTime below the mark is
// refused even if never seen; one just inside is admitted once.
func TestWindowTimeBound(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(2)
	top := t0 + uint64(time.Minute)
	if err := g.Advance(n, top, clockAt(top), false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ts   uint64
		want error
	}{
		{top - windowNS, ErrReplay}, // at the floor
		{top - windowNS - 1, ErrReplay},
		{t0, ErrReplay},
		{top - windowNS + 1, nil},
		{top - windowNS + 1, ErrReplay},
		{top, ErrReplay},
		{top - 1, nil},
		{top - 1, ErrReplay},
	} {
		if err := advance(g, n, tc.ts); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Fatalf("top-%d: got %v, want %v", top-tc.ts, err, tc.want)
		}
	}
	if floor, _ := g.Window(n); floor != top-windowNS {
		t.Fatalf("floor %d below the mark, want %d", top-floor, windowNS)
	}
}

// TestWindowCountBound: past WindowCount stamps below the mark the
// smallest becomes the floor: it and everything below it are refused,
// what is above and unseen is still admitted.
func TestWindowCountBound(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(2)
	top := t0 + 1000
	if err := advance(g, n, top); err != nil {
		t.Fatal(err)
	}
	// Fill the window with top-1 .. top-WindowCount (odd offsets would do
	// as well; the order does not matter).
	for i := uint64(1); i <= WindowCount; i++ {
		if err := advance(g, n, top-2*i); err != nil {
			t.Fatalf("top-%d: %v", 2*i, err)
		}
	}
	if _, below := g.Window(n); len(below) != WindowCount {
		t.Fatalf("window holds %d, want %d", len(below), WindowCount)
	}
	// One more, above the smallest: the smallest (top-2K) becomes the floor.
	if err := advance(g, n, top-1); err != nil {
		t.Fatal(err)
	}
	floor, below := g.Window(n)
	if floor != top-2*WindowCount {
		t.Fatalf("floor top-%d, want top-%d", top-floor, 2*WindowCount)
	}
	if len(below) != WindowCount {
		t.Fatalf("window holds %d after the overflow, want %d", len(below), WindowCount)
	}
	for _, ts := range []uint64{top - 2*WindowCount, top - 2*WindowCount - 1, top - 2, top - 1, top} {
		if err := advance(g, n, ts); !errors.Is(err, ErrReplay) {
			t.Fatalf("top-%d after the overflow: got %v, want ErrReplay", top-ts, err)
		}
	}
	if err := advance(g, n, top-3); err != nil {
		t.Fatalf("unseen top-3 above the floor: %v", err)
	}
	// An overflowing stamp that is itself the smallest becomes the floor.
	floor, _ = g.Window(n)
	if err := advance(g, n, floor+1); err != nil {
		t.Fatal(err)
	}
	if f, _ := g.Window(n); f != floor+1 {
		t.Fatalf("floor %d, want the overflowing stamp %d", f, floor+1)
	}
	if err := advance(g, n, floor+1); !errors.Is(err, ErrReplay) {
		t.Fatalf("the overflowing stamp again: %v", err)
	}
}

// TestWindowNewMarkKeepsOldOne: when the mark rises the old mark stays
// refused (it moves into the window), and window stamps fall out below
// the new floor.
func TestWindowNewMarkKeepsOldOne(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(2)
	if err := advance(g, n, t0+10); err != nil {
		t.Fatal(err)
	}
	if err := advance(g, n, t0+20); err != nil {
		t.Fatal(err)
	}
	if err := advance(g, n, t0+10); !errors.Is(err, ErrReplay) {
		t.Fatalf("old mark: %v", err)
	}
	if err := advance(g, n, t0+15); err != nil {
		t.Fatalf("between the marks: %v", err)
	}
	far := t0 + 20 + windowNS + 5
	if err := advance(g, n, far); err != nil {
		t.Fatal(err)
	}
	if floor, below := g.Window(n); floor != far-windowNS || len(below) != 0 {
		t.Fatalf("after a jump: floor top-%d, window %v", far-floor, below)
	}
}

// TestWindowRandomArrivals checks the window against its specification
// on random arrival orders and duplicates: a stamp is admitted at most
// once; nothing at or below mark - WindowTime is admitted; and a stamp
// overtaken by at most WindowCount later stamps, within WindowTime, is
// admitted.
func TestWindowRandomArrivals(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 200; round++ {
		g := NewGuard(GuardConfig{}, nil)
		n := nodeID(5)
		// Stamps 1 ms apart; each arrives late by a random displacement.
		const count = 64
		maxShift := 1 + rng.IntN(WindowCount+8)
		type arrival struct {
			ts  uint64
			key int
		}
		var arr []arrival
		for i := 0; i < count; i++ {
			ts := t0 + uint64(i+1)*uint64(time.Millisecond)
			arr = append(arr, arrival{ts, i + rng.IntN(maxShift)})
			if rng.IntN(4) == 0 {
				arr = append(arr, arrival{ts, i + rng.IntN(2*maxShift)}) // a replayed copy
			}
		}
		slices.SortStableFunc(arr, func(a, b arrival) int { return a.key - b.key })
		admitted := map[uint64]bool{}
		var top uint64
		for idx, a := range arr {
			err := advance(g, n, a.ts)
			if err == nil {
				if admitted[a.ts] {
					t.Fatalf("round %d: %d admitted twice", round, a.ts-t0)
				}
				if top > windowNS && a.ts <= top-windowNS {
					t.Fatalf("round %d: %d admitted below the window of %d", round, a.ts-t0, top-t0)
				}
				admitted[a.ts] = true
				top = max(top, a.ts)
				continue
			}
			if !errors.Is(err, ErrReplay) {
				t.Fatalf("round %d: %v", round, err)
			}
			if admitted[a.ts] {
				continue
			}
			// Refused the first copy: it must have been overtaken by more
			// than WindowCount admitted later stamps.
			later := 0
			for _, b := range arr[:idx] {
				if b.ts > a.ts && admitted[b.ts] {
					later++
				}
			}
			if later <= WindowCount {
				t.Fatalf("round %d: first copy of %d refused with only %d later stamps admitted", round, a.ts-t0, later)
			}
		}
	}
}

// TestWindowRestartVouchesForNothing: a guard restarted from its store's
// marks admits nothing at or below a restored mark, not even a stamp the
// window would have admitted before the restart.
func TestWindowRestartVouchesForNothing(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(2)
	for _, ts := range []uint64{t0 + 100, t0 + 90} {
		if err := advance(g, n, ts); err != nil {
			t.Fatal(err)
		}
	}
	r := NewGuard(GuardConfig{}, g.Snapshot())
	for _, ts := range []uint64{t0 + 100, t0 + 95, t0 + 90, t0 + 1} {
		if err := advance(r, n, ts); !errors.Is(err, ErrReplay) {
			t.Fatalf("%d after restart: got %v, want ErrReplay", ts-t0, err)
		}
	}
	if err := advance(r, n, t0+101); err != nil {
		t.Fatalf("above the mark after restart: %v", err)
	}
	if err := advance(r, n, t0+100); !errors.Is(err, ErrReplay) {
		t.Fatalf("the restored mark itself: %v", err)
	}
}

// TestWindowEvictedSenderIsFirstContact: a sender evicted for capacity
// is judged by the first-contact rule again.
func TestWindowEvictedSenderIsFirstContact(t *testing.T) {
	g := NewGuard(GuardConfig{Capacity: guardShards, Freshness: time.Minute}, nil)
	// Capacity one per shard: nodes 2 and 2+guardShards share a shard.
	a, b := nodeID(2), nodeID(2+guardShards)
	if err := g.Advance(a, t0, clockAt(t0), false); err != nil {
		t.Fatal(err)
	}
	if err := g.Advance(b, t0, clockAt(t0), false); err != nil {
		t.Fatal(err)
	}
	if !g.NeedsAttestation(a) {
		t.Fatal("evicted sender still has a mark")
	}
	if err := g.Advance(a, t0+1, clockAt(t0+uint64(2*time.Minute)), false); !errors.Is(err, ErrStale) {
		t.Fatalf("evicted sender outside freshness: %v", err)
	}
}

// TestWindowDoesNotAllocate: admissions below and above the mark of a
// known sender allocate nothing.
func TestWindowDoesNotAllocate(t *testing.T) {
	g := NewGuard(GuardConfig{}, nil)
	n := nodeID(2)
	now := clockAt(t0)
	ts := t0 + 1000
	if err := g.Advance(n, ts, now, false); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		ts += 10
		if err := g.Advance(n, ts, now, false); err != nil {
			t.Fatal(err)
		}
		if err := g.Advance(n, ts-5, now, false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Advance allocates %.1f times per call", allocs)
	}
}

// TestFirstContactAttested: with the server's attestation a first contact
// is admitted above the attested floor whatever the receiver's clock (a
// sender whose clock ran an hour ahead and was corrected), and refused at
// or below it; without one the freshness window still applies.
func TestFirstContactAttested(t *testing.T) {
	ahead := t0 + uint64(time.Hour) // the sender's stamps, an hour ahead
	now := clockAt(t0)
	att := Attestation{Floor: ahead - 5, OK: true}
	cases := []struct {
		name string
		ts   uint64
		att  Attestation
		want error
	}{
		{"above the floor", ahead, att, nil},
		{"at the floor", ahead - 5, att, ErrFloor},
		{"below the floor", ahead - uint64(time.Minute), att, ErrFloor},
		{"unattested, ahead", ahead, Attestation{}, ErrStale},
		{"unattested, fresh", t0, Attestation{}, nil},
		{"attested floor in the past, stamp fresh", t0, Attestation{Floor: t0 - 1, OK: true}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGuard(GuardConfig{Freshness: DefaultFreshness}, nil)
			err := g.AdvanceAttested(nodeID(2), tc.ts, now, false, tc.att)
			if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			_, has := g.Mark(nodeID(2))
			if has != (tc.want == nil) {
				t.Fatalf("mark present %v after %v", has, err)
			}
		})
	}
}

// TestFirstContactFloorCoversWindow: stamps below a first contact are
// admitted only above its floor: the attested floor, or mark - WindowTime.
func TestFirstContactFloorCoversWindow(t *testing.T) {
	g := NewGuard(GuardConfig{Freshness: 0}, nil)
	n := nodeID(2)
	top := t0 + uint64(time.Minute)
	if err := g.AdvanceAttested(n, top, clockAt(t0), false, Attestation{Floor: top - 100, OK: true}); err != nil {
		t.Fatal(err)
	}
	if err := advance(g, n, top-100); !errors.Is(err, ErrReplay) {
		t.Fatalf("at the attested floor: %v", err)
	}
	if err := advance(g, n, top-99); err != nil {
		t.Fatalf("above the attested floor: %v", err)
	}
	if g.NeedsAttestation(n) {
		t.Fatal("an attested sender still needs attestation")
	}
}

// TestRecoveryFloor: a guard started after a loss of marks admits nothing
// at or below the recovery floor from a sender it has not vouched for
// since, restored mark or not; a sender vouched for since is judged by its
// mark alone.
func TestRecoveryFloor(t *testing.T) {
	r := t0 + uint64(time.Minute) // the receiver's clock at the recovery
	f := uint64(DefaultFreshness)
	restored := map[proto.NodeID]uint64{nodeID(2): t0, nodeID(3): r + 50, nodeID(6): t0}
	now := clockAt(r + 10)
	g := NewGuard(GuardConfig{Freshness: DefaultFreshness, Recovery: Recovery{Active: true, Floor: r}}, restored)
	att := Attestation{OK: true, Fresh: true} // the receiver's own word (floor 0)
	none := Attestation{}
	heartbeats := Attestation{Floor: 1, OK: true} // not fresh: ignored while recovering
	cases := []struct {
		name string
		node proto.NodeID
		ts   uint64
		att  Attestation
		want error
	}{
		{"restored sender at its mark", nodeID(2), t0, att, ErrReplay},
		{"restored sender between mark and floor", nodeID(2), r - 1, att, ErrFloor},
		{"restored sender at the floor", nodeID(2), r, att, ErrFloor},
		{"restored sender above the floor", nodeID(2), r + 1, att, nil},
		{"restored sender, again", nodeID(2), r + 1, att, ErrReplay},
		{"vouched sender, window", nodeID(2), r, none, ErrReplay},
		{"restored mark above the floor", nodeID(3), r + 20, att, ErrReplay},
		{"restored mark above the floor, above it", nodeID(3), r + 51, att, nil},
		{"new sender below the floor", nodeID(4), r - 1, att, ErrFloor},
		{"new sender above the floor", nodeID(4), r + 5, att, nil},
		{"new sender above the floor, stale", nodeID(5), r + uint64(time.Hour), none, ErrStale},
		// Unattested, a sender whose clock runs ahead could have had a
		// PING stamped up to the freshness window above the receiver's
		// clock admitted before the loss: the floor is r + freshness.
		{"unattested, above the floor, ahead", nodeID(6), r + f/2, none, ErrFloor},
		{"unattested, at the floor plus freshness", nodeID(6), r + f, none, ErrFloor},
		{"unattested, above the floor plus freshness", nodeID(6), r + f + 1, none, nil},
		{"unattested new sender, ahead", nodeID(7), r + f - 1, none, ErrFloor},
		{"heartbeat attestation, ahead", nodeID(8), r + f - 1, heartbeats, ErrFloor},
		{"heartbeat attestation, above the floor plus freshness", nodeID(8), r + f + 1, heartbeats, nil},
	}
	for _, tc := range cases {
		err := g.AdvanceAttested(tc.node, tc.ts, now, false, tc.att)
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Fatalf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if g.NeedsAttestation(nodeID(2)) || !g.NeedsAttestation(nodeID(5)) {
		t.Fatal("vouched state wrong")
	}
}

// TestRecoveryWithoutClocks: with freshness 0 (clocks not trusted) a
// recovering guard admits a sender it has not vouched for only with a
// fresh attestation: the server's heartbeat attestation is not enough,
// since a PING sealed in the heartbeats before the loss can lie above it.
func TestRecoveryWithoutClocks(t *testing.T) {
	restored := map[proto.NodeID]uint64{nodeID(2): t0 + 100}
	g := NewGuard(GuardConfig{Freshness: 0, Recovery: Recovery{Active: true}}, restored)
	now := clockAt(t0)
	if err := g.Advance(nodeID(2), t0+200, now, false); !errors.Is(err, ErrUnattested) {
		t.Fatalf("unattested: %v", err)
	}
	if err := g.Advance(nodeID(9), t0+200, now, false); !errors.Is(err, ErrUnattested) {
		t.Fatalf("unattested new sender: %v", err)
	}
	// The capture sealed just before the loss, above the heartbeat floor.
	if err := g.AdvanceAttested(nodeID(2), t0+151, now, false, Attestation{Floor: t0 + 150, OK: true}); !errors.Is(err, ErrUnattested) {
		t.Fatalf("heartbeat attestation while recovering: %v", err)
	}
	// The fresh stamp (made after the lookup) vouches for the sender at
	// once: the PING asked about, sealed before it, is refused ...
	if err := g.AdvanceAttested(nodeID(2), t0+151, now, false, Attestation{Floor: t0 + 300, OK: true, Fresh: true}); !errors.Is(err, ErrFloor) {
		t.Fatalf("below the fresh floor: %v", err)
	}
	if g.NeedsAttestation(nodeID(2)) {
		t.Fatal("a fresh attestation did not vouch for the sender")
	}
	// ... and so is everything else at or below it, with no lookup.
	for _, ts := range []uint64{t0 + 101, t0 + 299, t0 + 300} {
		if err := g.Advance(nodeID(2), ts, now, false); !errors.Is(err, ErrReplay) {
			t.Fatalf("%d at or below the fresh floor: %v", ts, err)
		}
	}
	if err := g.Advance(nodeID(2), t0+301, now, false); err != nil {
		t.Fatalf("the sender's next PING: %v", err)
	}
	// A fresh stamp below a PING sealed after it (a concurrent one)
	// admits that PING at once.
	if err := g.AdvanceAttested(nodeID(9), t0+500, now, false, Attestation{Floor: t0 + 400, OK: true, Fresh: true}); err != nil {
		t.Fatalf("above the fresh floor: %v", err)
	}
	if err := g.AdvanceAttested(nodeID(9), t0+500, now, false, Attestation{Floor: t0 + 400, OK: true, Fresh: true}); !errors.Is(err, ErrReplay) {
		t.Fatalf("again: %v", err)
	}
}

// TestFreshAttestationPersists: the fresh floor is persisted as the
// sender's mark (so a restart keeps it vouched, with the floor), and a
// revoked sender is refused as revoked above it.
func TestFreshAttestationPersists(t *testing.T) {
	st := &recordingMarks{}
	g := NewGuard(GuardConfig{Freshness: 0, Store: st, Recovery: Recovery{Active: true}}, nil)
	now := clockAt(t0)
	if err := g.AdvanceAttested(nodeID(3), t0+10, now, false, Attestation{Floor: t0 + 20, OK: true, Fresh: true}); !errors.Is(err, ErrFloor) {
		t.Fatalf("below: %v", err)
	}
	if err := g.AdvanceAttested(nodeID(4), t0+30, now, true, Attestation{Floor: t0 + 20, OK: true, Fresh: true}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	want := []uint64{t0 + 20, t0 + 20}
	if len(st.ts) != len(want) || st.ts[0] != want[0] || st.ts[1] != want[1] {
		t.Fatalf("persisted %v, want %v", st.ts, want)
	}
}

// recordingMarks records every Put.
type recordingMarks struct{ ts []uint64 }

func (r *recordingMarks) Put(_ proto.NodeID, ts uint64) error {
	r.ts = append(r.ts, ts)
	return nil
}

// TestRecoveryUnvouchedSubset: only the listed senders are unvouched (a
// recovery persisted by the store and restored at a later start).
func TestRecoveryUnvouchedSubset(t *testing.T) {
	restored := map[proto.NodeID]uint64{nodeID(2): t0, nodeID(3): t0}
	g := NewGuard(GuardConfig{Freshness: 0, Recovery: Recovery{Active: true, Unvouched: map[proto.NodeID]struct{}{nodeID(2): {}}}}, restored)
	if !g.NeedsAttestation(nodeID(2)) || g.NeedsAttestation(nodeID(3)) {
		t.Fatal("unvouched set not applied")
	}
	if err := advance(g, nodeID(3), t0+1); err != nil {
		t.Fatalf("vouched sender: %v", err)
	}
}

// TestVerifierAsksForAttestation: the verifier asks only for senders the
// guard holds no vouched mark for, and not for a revoked one.
func TestVerifierAsksForAttestation(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	recv := addr("127.0.0.3")
	asked := 0
	deny := &DenyList{}
	// The receiver's clock is an hour ahead of the senders': only the
	// attestation admits them.
	rclock := &fakeClock{t: epoch.Add(time.Hour)}
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Freshness: time.Minute}, nil), Now: rclock.Now, Revoker: deny,
		Attest: func(n proto.NodeID) Attestation {
			asked++
			return Attestation{Floor: 1, OK: true}
		}}
	var res Result
	for i := 0; i < 3; i++ {
		f, _, err := a.sealer.Ping(nil, a.addr, recv)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyPing(f, a.addr, recv, &res); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
	}
	if asked != 1 {
		t.Fatalf("asked %d times, want once", asked)
	}
	deny.Deny(nodeID(4), proto.Addr{})
	b := newEndpoint(t, keys, "127.0.0.4", 4, rclock) // fresh, so check 10 decides
	f, _, _ := b.sealer.Ping(nil, b.addr, recv)
	if err := v.VerifyPing(f, b.addr, recv, &res); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked sender: %v", err)
	}
	if asked != 1 {
		t.Fatal("asked for a revoked sender")
	}
}

// TestVerifyPingAttested: the caller's attestation (the server's, for a
// session it authenticated) admits a first contact far outside the
// freshness window, and Attest is not asked.
func TestVerifyPingAttested(t *testing.T) {
	keys := newTestKeys(t, 7)
	sclock := &fakeClock{t: epoch.Add(time.Hour)} // the sender's clock runs an hour ahead
	a := newEndpoint(t, keys, "127.0.0.2", 2, sclock)
	recv := addr("127.0.0.3")
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Freshness: time.Minute}, nil), Now: (&fakeClock{t: epoch}).Now,
		Attest: func(proto.NodeID) Attestation { t.Fatal("asked"); return Attestation{} }}
	f, _, _ := a.sealer.Ping(nil, a.addr, recv)
	var res Result
	// An attestation of another node does not cover this sender.
	if err := v.VerifyPingAttested(f, a.addr, recv, nodeID(9), Attestation{OK: true}, &res); !errors.Is(err, ErrStale) {
		t.Fatalf("PING of node 2 with an attestation of node 9: %v, want ErrStale", err)
	}
	f, _, _ = a.sealer.Ping(nil, a.addr, recv)
	if err := v.VerifyPingAttested(f, a.addr, recv, nodeID(2), Attestation{OK: true}, &res); err != nil {
		t.Fatal(err)
	}
}
