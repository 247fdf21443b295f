// Package connlimit bounds what one source address can make a listener do
// before it has authenticated: how many of its connections may be in the
// handshake at once, and how fast it may open new ones (a token bucket per
// source IP). Both daemons check every accepted connection here first and
// refuse the excess with reason "rate_limited", so a flood from one address
// cannot starve admissions from the others.
//
// It does not defend against a flood from many distinct sources: memory is
// bounded (MaxSources), and past that bound idle sources are forgotten and
// a source that cannot be tracked is refused (see docs/SECURITY.md).
package connlimit

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Refusals. Callers log them under reasons.RateLimited and answer with its
// Reject code; the error text says which limit.
var (
	// ErrPending means the source already has MaxPending connections in
	// the handshake.
	ErrPending = errors.New("too many unauthenticated connections from this source")
	// ErrRate means the source's accept bucket is empty.
	ErrRate = errors.New("connection rate from this source over its limit")
	// ErrSources means MaxSources sources all have connections in the
	// handshake, so a new source cannot be tracked.
	ErrSources = errors.New("too many sources in the handshake")
)

// Defaults for Config. They are generous for a MOM or a server: a sister
// opens one IM connection per job event, and the handshake is one round
// trip, so a legitimate source rarely has more than a few in flight.
const (
	DefaultMaxPending = 16
	DefaultRate       = 200.0 // connections per second per source, sustained
	DefaultBurst      = 400
	DefaultMaxSources = 65536
)

// Config configures a Limiter.
type Config struct {
	// MaxPending is the number of connections one source IP may have in
	// the handshake at once; 0 means DefaultMaxPending, < 0 no limit.
	MaxPending int
	// Rate is the sustained accepts per second per source IP; 0 means
	// DefaultRate, < 0 no rate limit.
	Rate float64
	// Burst is the accepts a source may make at once; <= 0 means
	// DefaultBurst.
	Burst int
	// MaxSources bounds the sources tracked; <= 0 means DefaultMaxSources.
	MaxSources int
	// Now is the clock for the buckets; nil means time.Now.
	Now func() time.Time
}

// Check validates the configuration, for flag checking before New.
func (c Config) Check() error {
	if c.Rate > 1e9 {
		return fmt.Errorf("accept rate %g per second: at most 1e9", c.Rate)
	}
	if c.Burst > 1<<30 || c.MaxPending > 1<<30 || c.MaxSources > 1<<24 {
		return fmt.Errorf("connection limits out of range (burst %d, pending %d, sources %d)", c.Burst, c.MaxPending, c.MaxSources)
	}
	return nil
}

// Limiter tracks sources. It is safe for concurrent use.
type Limiter struct {
	maxPending int
	rate       float64 // tokens per nanosecond; 0 disables the bucket
	burst      float64
	maxSources int
	now        func() time.Time

	mu  sync.Mutex
	src map[netip.Addr]*source
}

type source struct {
	pending int
	tokens  float64
	last    int64 // Unix ns of the last refill
}

// New returns a Limiter for cfg, with defaults filled in.
func New(cfg Config) *Limiter {
	l := &Limiter{maxPending: cfg.MaxPending, burst: float64(cfg.Burst), maxSources: cfg.MaxSources, now: cfg.Now,
		src: map[netip.Addr]*source{}}
	if l.maxPending == 0 {
		l.maxPending = DefaultMaxPending
	}
	switch {
	case cfg.Rate == 0:
		l.rate = DefaultRate / 1e9
	case cfg.Rate > 0:
		l.rate = cfg.Rate / 1e9
	}
	if l.burst <= 0 {
		l.burst = DefaultBurst
	}
	if l.maxSources <= 0 {
		l.maxSources = DefaultMaxSources
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Release ends the handshake phase of one admitted connection. Call it
// exactly once, when the peer has authenticated or the connection closed.
type Release func()

// Admit decides on a new connection from ip. On success the caller must
// call the returned Release once; on refusal the error is one of ErrPending,
// ErrRate or ErrSources.
func (l *Limiter) Admit(ip netip.Addr) (Release, error) {
	slot := new(Slot)
	if err := l.Take(ip, slot); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(slot.Release) }, nil
}

// Slot is one connection's place among its source's connections in the
// handshake, held from Take until Release. The zero Slot holds nothing. A
// Slot is used by one goroutine; it lets the accept path of a daemon take
// and give back its place without allocating.
type Slot struct {
	l  *Limiter
	ip netip.Addr
}

// Release gives the place back; calling it again, or on a zero Slot, does
// nothing.
func (s *Slot) Release() {
	if s.l != nil {
		s.l.release(s.ip)
		s.l = nil
	}
}

// Take is Admit into slot: on success slot holds the place until its
// Release. On refusal slot is left empty and the error is one of
// ErrPending, ErrRate or ErrSources.
func (l *Limiter) Take(ip netip.Addr, slot *Slot) error {
	slot.Release()
	ip = ip.Unmap()
	ns := l.now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.src[ip]
	if s == nil {
		if len(l.src) >= l.maxSources {
			l.sweep()
			if len(l.src) >= l.maxSources {
				return ErrSources
			}
		}
		s = &source{tokens: l.burst, last: ns}
		l.src[ip] = s
	}
	if l.maxPending > 0 && s.pending >= l.maxPending {
		return ErrPending
	}
	if l.rate > 0 {
		if d := ns - s.last; d > 0 {
			s.tokens = min(l.burst, s.tokens+float64(d)*l.rate)
			s.last = ns
		}
		if s.tokens < 1 {
			return ErrRate
		}
		s.tokens--
	}
	s.pending++
	slot.l, slot.ip = l, ip
	return nil
}

func (l *Limiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.src[ip]; s != nil && s.pending > 0 {
		s.pending--
	}
}

// sweep forgets every source with nothing in the handshake. It runs only
// when the table is full, so its cost is spread over MaxSources new
// sources. A forgotten source starts again with a full bucket.
func (l *Limiter) sweep() {
	for ip, s := range l.src {
		if s.pending == 0 {
			delete(l.src, ip)
		}
	}
}

// Sources returns the number of sources tracked.
func (l *Limiter) Sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.src)
}

// Pending returns the connections of ip in the handshake.
func (l *Limiter) Pending(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.src[ip.Unmap()]; s != nil {
		return s.pending
	}
	return 0
}
