package connlimit

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

var (
	a = netip.MustParseAddr("127.0.0.2")
	b = netip.MustParseAddr("127.0.0.3")
)

func TestPendingLimitPerSource(t *testing.T) {
	l := New(Config{MaxPending: 3, Rate: -1, Now: newClock().Now})
	var rel []Release
	for i := range 3 {
		r, err := l.Admit(a)
		if err != nil {
			t.Fatalf("connection %d refused: %v", i, err)
		}
		rel = append(rel, r)
	}
	if _, err := l.Admit(a); !errors.Is(err, ErrPending) {
		t.Fatalf("4th pending connection: %v, want ErrPending", err)
	}
	// Another source is not affected.
	if _, err := l.Admit(b); err != nil {
		t.Fatalf("other source refused: %v", err)
	}
	// IPv4-mapped is the same source.
	if _, err := l.Admit(netip.AddrFrom16(a.As16())); !errors.Is(err, ErrPending) {
		t.Fatalf("mapped address escaped the limit: %v", err)
	}
	rel[0]()
	rel[0]() // idempotent
	if got := l.Pending(a); got != 2 {
		t.Fatalf("pending after one release (called twice) = %d, want 2", got)
	}
	if _, err := l.Admit(a); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRateLimitPerSource(t *testing.T) {
	c := newClock()
	l := New(Config{MaxPending: -1, Rate: 10, Burst: 5, Now: c.Now})
	for i := range 5 {
		r, err := l.Admit(a)
		if err != nil {
			t.Fatalf("burst connection %d refused: %v", i, err)
		}
		r()
	}
	if _, err := l.Admit(a); !errors.Is(err, ErrRate) {
		t.Fatalf("past the burst: %v, want ErrRate", err)
	}
	if _, err := l.Admit(b); err != nil {
		t.Fatalf("other source refused: %v", err)
	}
	c.Advance(100 * time.Millisecond) // one token at 10/s
	if _, err := l.Admit(a); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if _, err := l.Admit(a); !errors.Is(err, ErrRate) {
		t.Fatalf("second after one token: %v, want ErrRate", err)
	}
	c.Advance(time.Hour) // refill caps at the burst
	for i := range 5 {
		if _, err := l.Admit(a); err != nil {
			t.Fatalf("refilled burst %d: %v", i, err)
		}
	}
	if _, err := l.Admit(a); !errors.Is(err, ErrRate) {
		t.Fatalf("bucket exceeded its burst after an hour: %v", err)
	}
}

func TestSourcesBounded(t *testing.T) {
	l := New(Config{MaxSources: 4, Rate: -1, Now: newClock().Now})
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 1, 0, byte(i)}) }
	var held []Release
	for i := range 4 {
		r, err := l.Admit(ip(i))
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			r() // idle: may be forgotten
		} else {
			held = append(held, r)
		}
	}
	if _, err := l.Admit(ip(10)); err != nil {
		t.Fatalf("new source with idle ones to forget: %v", err)
	}
	if n := l.Sources(); n != 3 {
		t.Fatalf("sources after sweep = %d, want 3 (two busy, one new)", n)
	}
	if _, err := l.Admit(ip(11)); err != nil {
		t.Fatal(err)
	}
	// Full of sources with connections in the handshake: refuse a new one.
	if _, err := l.Admit(ip(12)); !errors.Is(err, ErrSources) {
		t.Fatalf("full table: %v, want ErrSources", err)
	}
	for _, r := range held {
		r()
	}
}

func TestDefaults(t *testing.T) {
	l := New(Config{})
	if l.maxPending != DefaultMaxPending || l.burst != DefaultBurst || l.maxSources != DefaultMaxSources || l.rate != DefaultRate/1e9 {
		t.Fatalf("defaults not applied: %+v", l)
	}
	if err := (Config{Rate: 2e9}).Check(); err == nil {
		t.Fatal("absurd rate accepted")
	}
}

func TestConcurrentAdmitRelease(t *testing.T) {
	l := New(Config{MaxPending: 8, Rate: -1})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(g % 2)})
			for range 1000 {
				if r, err := l.Admit(ip); err == nil {
					r()
				}
			}
		}()
	}
	wg.Wait()
	for i := range 2 {
		if p := l.Pending(netip.AddrFrom4([4]byte{127, 0, 0, byte(i)})); p != 0 {
			t.Fatalf("pending %d after all released", p)
		}
	}
}

// TestSlot: Take holds a place like Admit, Release gives it back once, and
// neither allocates once the source is known.
func TestSlot(t *testing.T) {
	l := New(Config{MaxPending: 1, Rate: -1, Now: newClock().Now})
	var s1, s2 Slot
	if err := l.Take(a, &s1); err != nil {
		t.Fatal(err)
	}
	if err := l.Take(a, &s2); !errors.Is(err, ErrPending) {
		t.Fatalf("second slot: %v, want ErrPending", err)
	}
	s2.Release() // empty: nothing to give back
	if got := l.Pending(a); got != 1 {
		t.Fatalf("pending %d after releasing an empty slot, want 1", got)
	}
	s1.Release()
	s1.Release()
	if got := l.Pending(a); got != 0 {
		t.Fatalf("pending %d after release, want 0", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		var s Slot
		if err := l.Take(a, &s); err != nil {
			t.Fatal(err)
		}
		s.Release()
	}); n != 0 {
		t.Fatalf("Take and Release allocate %v times", n)
	}
}
