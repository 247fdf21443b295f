package ping

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
)

func TestSwapAdmitsBothWays(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	b := newEndpoint(t, keys, "127.0.0.3", 3, clock)

	frame, rnd, err := a.sealer.Ping(nil, a.addr, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(frame) != FrameSize {
		t.Fatalf("ping frame is %d bytes, want %d", len(frame), FrameSize)
	}
	var res Result
	if err := b.verif.VerifyPing(frame, a.addr, b.addr, &res); err != nil {
		t.Fatalf("responder rejected ping: %v", err)
	}
	if res.Node != nodeID(2) || res.KeyID != 7 || res.Reply || res.Random != rnd {
		t.Fatalf("unexpected result %+v", res)
	}
	reply, err := b.sealer.Reply(nil, b.addr, a.addr, res.Random)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != ReplyFrameSize {
		t.Fatalf("reply frame is %d bytes, want %d", len(reply), ReplyFrameSize)
	}
	var back Result
	if err := a.verif.VerifyReply(reply, b.addr, a.addr, &rnd, &back); err != nil {
		t.Fatalf("initiator rejected reply: %v", err)
	}
	if back.Node != nodeID(3) || !back.Reply || back.Echo != rnd {
		t.Fatalf("unexpected reply result %+v", back)
	}
}

// TestRejections drives every rejection reason of PROTOCOL.md 3.2.
func TestRejections(t *testing.T) {
	keys := newTestKeys(t, 7, 8)
	other := newTestKeys(t, 9) // a key the receiver does not hold
	clock := &fakeClock{t: epoch}
	snd := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	src, dst := snd.addr, addr("127.0.0.3")

	good := func(t *testing.T) []byte {
		f, _, err := snd.sealer.Ping(nil, src, dst)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	sealWith := func(k KeySource, p Payload) []byte {
		id, aead := k.Seal()
		var nonce [NonceSize]byte
		return SealPayload(nil, false, id, aead, &nonce, &p)
	}
	fresh := func() uint64 { return uint64(clock.Now().UnixNano()) }

	cases := []struct {
		name    string
		frame   func(t *testing.T) []byte
		source  proto.Addr
		prepare func(v *Verifier)
		echo    *[RandomSize]byte
		want    error
	}{
		{name: "empty", frame: func(*testing.T) []byte { return nil }, want: ErrMalformed},
		{name: "short header", frame: func(*testing.T) []byte { return []byte{0x4d, 0x47, 2} }, want: ErrMalformed},
		{name: "bad magic", frame: func(t *testing.T) []byte { f := good(t); f[0] = 'X'; return f }, want: ErrMalformed},
		{name: "truncated", frame: func(t *testing.T) []byte { return good(t)[:FrameSize-1] }, want: ErrMalformed},
		{name: "trailing byte", frame: func(t *testing.T) []byte { return append(good(t), 0) }, want: ErrMalformed},
		{name: "length field lies", frame: func(t *testing.T) []byte {
			f := good(t)
			binary.BigEndian.PutUint32(f[4:8], 1)
			return f
		}, want: ErrMalformed},
		{name: "not a ping type", frame: func(t *testing.T) []byte { f := good(t); f[3] = byte(proto.TypeHello); return f }, want: ErrMalformed},
		{name: "reply where ping expected", frame: func(t *testing.T) []byte {
			f, err := snd.sealer.Reply(nil, src, dst, [RandomSize]byte{1})
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, want: ErrMalformed},
		{name: "version 1", frame: func(t *testing.T) []byte { f := good(t); f[2] = 1; return f }, want: ErrVersion},
		{name: "version 3", frame: func(t *testing.T) []byte { f := good(t); f[2] = 3; return f }, want: ErrVersion},
		{name: "unknown key id", frame: func(*testing.T) []byte {
			return sealWith(other, Payload{Timestamp: fresh(), Sender: src, Dest: dst, Node: nodeID(2)})
		}, want: ErrUnknownKey},
		{name: "key id swapped to another held key", frame: func(t *testing.T) []byte {
			f := good(t)
			binary.BigEndian.PutUint32(f[8:12], 8)
			return f
		}, want: ErrAuth},
		{name: "ciphertext flipped", frame: func(t *testing.T) []byte { f := good(t); f[50] ^= 1; return f }, want: ErrAuth},
		{name: "tag flipped", frame: func(t *testing.T) []byte { f := good(t); f[len(f)-1] ^= 1; return f }, want: ErrAuth},
		{name: "nonce flipped", frame: func(t *testing.T) []byte { f := good(t); f[12] ^= 1; return f }, want: ErrAuth},
		{name: "spoofed source", frame: good, source: addr("127.0.0.9"), want: ErrAddrMismatch},
		{name: "for another receiver", frame: func(*testing.T) []byte {
			return sealWith(keys, Payload{Timestamp: fresh(), Sender: src, Dest: addr("127.0.0.4"), Node: nodeID(2)})
		}, want: ErrWrongDest},
		{name: "reply with wrong echo", frame: func(t *testing.T) []byte {
			f, err := snd.sealer.Reply(nil, src, dst, [RandomSize]byte{1})
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, echo: &[RandomSize]byte{2}, want: ErrEcho},
		{name: "older ping below the window", frame: good, prepare: func(v *Verifier) {
			// A later PING stamped more than WindowTime after it.
			next := sealWith(keys, Payload{Timestamp: fresh() + uint64(WindowTime+time.Second), Sender: src, Dest: dst, Node: nodeID(2)})
			var r Result
			if err := v.VerifyPing(next, src, dst, &r); err != nil {
				panic(err)
			}
		}, want: ErrReplay},
		{name: "stale first contact (past)", frame: func(*testing.T) []byte {
			return sealWith(keys, Payload{Timestamp: fresh() - uint64(6*time.Minute), Sender: src, Dest: dst, Node: nodeID(2)})
		}, want: ErrStale},
		{name: "stale first contact (future)", frame: func(*testing.T) []byte {
			return sealWith(keys, Payload{Timestamp: fresh() + uint64(6*time.Minute), Sender: src, Dest: dst, Node: nodeID(2)})
		}, want: ErrStale},
		{name: "revoked node", frame: good, prepare: func(v *Verifier) {
			d := &DenyList{}
			d.Deny(nodeID(2), proto.Addr{})
			v.Revoker = d
		}, want: ErrRevoked},
		{name: "revoked address", frame: good, prepare: func(v *Verifier) {
			d := &DenyList{}
			d.Deny(nodeID(99), src)
			v.Revoker = d
		}, want: ErrRevoked},
		{name: "store failure", frame: good, prepare: func(v *Verifier) {
			v.Guard = NewGuard(GuardConfig{Store: failingMarks{}}, nil)
		}, want: ErrPersist},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Freshness: -1}, nil), Now: clock.Now}
			frame := tc.frame(t)
			if tc.prepare != nil {
				tc.prepare(v)
			}
			source := src
			if tc.source != (proto.Addr{}) {
				source = tc.source
			}
			before, hadMark := v.Guard.Mark(nodeID(2))
			var res Result
			var err error
			if tc.echo != nil {
				err = v.VerifyReply(frame, source, dst, tc.echo, &res)
			} else {
				err = v.VerifyPing(frame, source, dst, &res)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if after, has := v.Guard.Mark(nodeID(2)); has != hadMark || after != before {
				t.Fatalf("rejected ping moved the high-water mark")
			}
		})
	}
}

type failingMarks struct{}

func (failingMarks) Put(proto.NodeID, uint64) error { return errors.New("disk full") }

func TestReplaySameFrameTwice(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	b := newEndpoint(t, keys, "127.0.0.3", 3, clock)
	frame, _, err := a.sealer.Ping(nil, a.addr, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	captured := bytes.Clone(frame)
	var res Result
	if err := b.verif.VerifyPing(frame, a.addr, b.addr, &res); err != nil {
		t.Fatal(err)
	}
	if err := b.verif.VerifyPing(bytes.Clone(captured), a.addr, b.addr, &res); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed ping: got %v, want ErrReplay", err)
	}
	// Replayed to another receiver: the destination names b.
	c := newEndpoint(t, keys, "127.0.0.4", 4, clock)
	if err := c.verif.VerifyPing(bytes.Clone(captured), a.addr, c.addr, &res); !errors.Is(err, ErrWrongDest) {
		t.Fatalf("cross-receiver replay: got %v, want ErrWrongDest", err)
	}
}

// TestWallClockStepsBackAnHour: the sender is still admitted and its
// timestamps keep increasing, so no replay window opens.
func TestWallClockStepsBackAnHour(t *testing.T) {
	keys := newTestKeys(t, 7)
	sclock := &fakeClock{t: epoch}
	rclock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, sclock)
	b := newEndpoint(t, keys, "127.0.0.3", 3, rclock)
	var last uint64
	var old [][]byte
	for i := 0; i < 5; i++ {
		f, _, err := a.sealer.Ping(nil, a.addr, b.addr)
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, bytes.Clone(f))
		var res Result
		if err := b.verif.VerifyPing(f, a.addr, b.addr, &res); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		last = res.Timestamp
		sclock.Add(time.Second)
	}
	sclock.Add(-time.Hour)
	for i := 0; i < 5; i++ {
		f, _, err := a.sealer.Ping(nil, a.addr, b.addr)
		if err != nil {
			t.Fatal(err)
		}
		var res Result
		if err := b.verif.VerifyPing(f, a.addr, b.addr, &res); err != nil {
			t.Fatalf("after step back, ping %d: %v", i, err)
		}
		if res.Timestamp <= last {
			t.Fatalf("timestamp went backwards: %d <= %d", res.Timestamp, last)
		}
		last = res.Timestamp
		sclock.Add(time.Second)
	}
	for i, f := range old {
		var res Result
		if err := b.verif.VerifyPing(f, a.addr, b.addr, &res); !errors.Is(err, ErrReplay) {
			t.Fatalf("old ping %d after step back: got %v, want ErrReplay", i, err)
		}
	}
}

func TestStamperRestartNeverReuses(t *testing.T) {
	clock := &fakeClock{t: epoch}
	store := &MemCeiling{}
	s1, err := NewStamper(clock.Now, store, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := 0; i < 1000; i++ {
		ts, err := s1.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ts <= last {
			t.Fatalf("not strictly increasing: %d after %d", ts, last)
		}
		last = ts
	}
	if w := store.Writes(); w != 1 {
		t.Fatalf("1000 stamps in one instant wrote the ceiling %d times, want 1", w)
	}
	// Restart with the wall clock an hour behind: still above everything issued.
	clock.Add(-time.Hour)
	s2, err := NewStamper(clock.Now, store, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := s2.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ts <= last {
		t.Fatalf("after restart issued %d, not above %d", ts, last)
	}
}

type failingCeiling struct{ MemCeiling }

func (*failingCeiling) StoreCeiling(uint64) error { return errors.New("read-only fs") }

func TestStamperRefusesWhenCeilingNotPersisted(t *testing.T) {
	clock := &fakeClock{t: epoch}
	s, err := NewStamper(clock.Now, &failingCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err == nil {
		t.Fatal("issued a timestamp whose ceiling was not persisted")
	}
}

// memMarks is a MarkStore that remembers every mark, like the daemons' log.
type memMarks struct {
	mu sync.Mutex
	m  map[proto.NodeID]uint64
}

func (s *memMarks) Put(n proto.NodeID, ts uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[proto.NodeID]uint64{}
	}
	s.m[n] = ts
	return nil
}

func TestGuardRestartFromPersistedMarks(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	store := &memMarks{}
	recv := addr("127.0.0.3")
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Store: store}, nil), Now: clock.Now}
	f, _, _ := a.sealer.Ping(nil, a.addr, recv)
	captured := bytes.Clone(f)
	var res Result
	if err := v.VerifyPing(f, a.addr, recv, &res); err != nil {
		t.Fatal(err)
	}
	// The receiver restarts from what its store persisted.
	restarted := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Store: store}, store.m), Now: clock.Now}
	if err := restarted.VerifyPing(captured, a.addr, recv, &res); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after restart: got %v, want ErrReplay", err)
	}
	f2, _, _ := a.sealer.Ping(nil, a.addr, recv)
	if err := restarted.VerifyPing(f2, a.addr, recv, &res); err != nil {
		t.Fatalf("fresh ping after restart: %v", err)
	}
}

func TestGuardBoundedMemory(t *testing.T) {
	const capacity = 64
	clock := &fakeClock{t: epoch}
	g := NewGuard(GuardConfig{Capacity: capacity, Freshness: time.Minute}, nil)
	now := uint64(epoch.UnixNano())
	for i := 0; i < 10*capacity; i++ {
		var n proto.NodeID
		binary.BigEndian.PutUint64(n[8:], uint64(i))
		n[15] = byte(i)
		if err := g.Advance(n, now, clock.Now, false); err != nil {
			t.Fatalf("sender %d: %v", i, err)
		}
	}
	if l := g.Len(); l > capacity+guardShards {
		t.Fatalf("guard holds %d marks, capacity %d", l, capacity)
	}
	// An evicted sender is a first contact again: the freshness window applies.
	var first proto.NodeID
	if _, ok := g.Mark(first); ok {
		t.Skip("sender 0 happened to survive eviction")
	}
	if err := g.Advance(first, now-uint64(2*time.Minute), clock.Now, false); !errors.Is(err, ErrStale) {
		t.Fatalf("evicted sender replaying an old ping: got %v, want ErrStale", err)
	}
}

func TestFreshnessZeroDisables(t *testing.T) {
	g := NewGuard(GuardConfig{Freshness: 0}, nil)
	if err := g.Advance(nodeID(1), 1, func() time.Time { return epoch }, false); err != nil {
		t.Fatalf("freshness 0 should accept any first contact: %v", err)
	}
}

// TestConcurrentRaceAdmitsOnce: copies of one PING verified concurrently
// are admitted exactly once; distinct senders all get through.
func TestConcurrentRaceAdmitsOnce(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	recv := addr("127.0.0.3")
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{}, nil), Now: clock.Now}
	const senders, copies = 8, 16
	var admitted, replays atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		e := newEndpoint(t, keys, fmt.Sprintf("127.0.1.%d", s+1), byte(s+10), clock)
		f, _, err := e.sealer.Ping(nil, e.addr, recv)
		if err != nil {
			t.Fatal(err)
		}
		for c := 0; c < copies; c++ {
			wg.Add(1)
			go func(frame []byte, src proto.Addr) {
				defer wg.Done()
				var res Result
				switch err := v.VerifyPing(frame, src, recv, &res); {
				case err == nil:
					admitted.Add(1)
				case errors.Is(err, ErrReplay):
					replays.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			}(bytes.Clone(f), e.addr)
		}
	}
	wg.Wait()
	if admitted.Load() != senders || replays.Load() != senders*(copies-1) {
		t.Fatalf("admitted %d, replays %d; want %d and %d", admitted.Load(), replays.Load(), senders, senders*(copies-1))
	}
}

func TestReasonLabels(t *testing.T) {
	seen := map[string]bool{}
	for _, l := range Reasons() {
		if seen[l] {
			t.Fatalf("duplicate label %q", l)
		}
		seen[l] = true
	}
	if got := Reason(fmt.Errorf("wrapped: %w", ErrUnknownKey)); got != "key_mismatch" {
		t.Fatalf("Reason = %q", got)
	}
	if got := Reason(errors.New("x")); got != "other" {
		t.Fatalf("Reason = %q", got)
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	recv := addr("127.0.0.3")
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{}, nil), Now: clock.Now}
	const n = 200
	frames := make([][]byte, n+1)
	for i := range frames {
		frames[i], _, _ = a.sealer.Ping(nil, a.addr, recv)
	}
	var res Result
	_ = v.VerifyPing(frames[0], a.addr, recv, &res) // first contact creates the mark
	i := 1
	allocs := testing.AllocsPerRun(n-1, func() {
		if err := v.VerifyPing(frames[i], a.addr, recv, &res); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("VerifyPing allocates %.1f times per call", allocs)
	}
}
