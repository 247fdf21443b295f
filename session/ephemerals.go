package session

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Ephemerals is a daemon's ephemeral X25519 key for the session swaps of
// one channel, reused for a bounded time and number of swaps, as a
// WireGuard peer's handshake key lives a bounded time (docs/PROTOCOL.md
// 6.3, 6.8). A swap then costs this side at most one scalar
// multiplication, the exchange, and none when it swaps again with a peer
// whose ephemeral key it already met: the output of each exchange is kept
// with the key (a bounded cache per pair of ephemeral keys) for as long
// as the key lives. Every session still gets keys of its own: S0 is bound
// to both shares and both random values of its swap (the transcript), and
// those are fresh every time.
//
// Lifetime. A key starts serving swaps when the first swap takes it; it
// serves new swaps until Lifetime-Hold after that or MaxUses swaps, then
// it is retired, and it is erased (private scalar and cached outputs
// overwritten) Hold after its retirement and never later than Lifetime
// after its first swap. Hold lets a swap that took the key just before its
// retirement finish; a swap that is slower than that fails (ErrExpired).
// So every ephemeral secret of a session is erased at both ends at most
// Lifetime after the swap, whatever the daemons do later.
//
// The next key is made ahead, off the swap path: the owner (a daemon
// goroutine) calls Maintain when Wanted fires and at the time Maintain
// returns; a swap that finds no key ready makes one itself. Safe for
// concurrent use. The clock is a parameter of every call.
type Ephemerals struct {
	cfg EphemeralConfig

	mu   sync.Mutex
	cur  *ephKey   // serving new swaps; nil before the first, or once retired
	next *ephKey   // made ahead by Maintain, not yet serving
	old  []*ephKey // retired, erased at their deadline
	want chan struct{}
	st   EphemeralStats
}

// EphemeralConfig bounds an Ephemerals' keys; zero fields take defaults.
type EphemeralConfig struct {
	// Rand draws the private keys (crypto/rand.Reader in the daemons).
	Rand io.Reader
	// Now is the clock of the keys' lifetimes (time.Now in the daemons).
	Now func() time.Time
	// Lifetime is the longest a key lives after its first swap: it is
	// erased by then (default 120 s, WireGuard's rekey time).
	Lifetime time.Duration
	// Hold is how long a retired key stays for the swaps that took it to
	// finish (default 10 s, the daemons' handshake deadline: a swap that
	// takes longer has failed anyway).
	Hold time.Duration
	// MaxUses is how many swaps one key serves (default 16,384).
	MaxUses int
	// CacheSize is how many exchange outputs one key keeps, one per peer
	// ephemeral key met (default 4,096; 0 takes it, -1 keeps none).
	CacheSize int
}

// Defaults of EphemeralConfig.
const (
	DefaultEphemeralLifetime  = 120 * time.Second
	DefaultEphemeralHold      = 10 * time.Second
	DefaultEphemeralMaxUses   = 1 << 14
	DefaultEphemeralCacheSize = 4096
)

// EphemeralStats counts what an Ephemerals did.
type EphemeralStats struct {
	Made       uint64 `json:"made"`        // keys made, in all
	MadeInline uint64 `json:"made_inline"` // of which by a swap that found none ready
	Erased     uint64 `json:"erased"`      // keys erased
	Uses       uint64 `json:"uses"`        // swaps that took a key
	Exchanges  uint64 `json:"exchanges"`   // X25519 exchanges computed
	CacheHits  uint64 `json:"cache_hits"`  // exchanges answered from the cache
}

// ephKey is one key and what it serves.
type ephKey struct {
	// mu is held for reading while the private key computes an exchange,
	// and for writing to erase it.
	mu     sync.RWMutex
	e      ephemeral
	erased bool // under mu

	// The rest is under Ephemerals.mu.
	first   time.Time // its first swap (zero: made ahead, not serving yet)
	uses    int
	retired time.Time // zero while it may serve new swaps
	// cache: peer ephemeral key -> exchange output. The outputs are
	// separate arrays, so that the map's growth moves only pointers and
	// erase overwrites every copy there is.
	cache map[[32]byte]*[KeySize]byte
}

// NewEphemerals checks cfg and returns an Ephemerals with no key yet (the
// first Maintain or swap makes one).
func NewEphemerals(cfg EphemeralConfig) (*Ephemerals, error) {
	if cfg.Rand == nil || cfg.Now == nil {
		return nil, errors.New("ephemerals: no randomness or no clock")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultEphemeralLifetime
	}
	if cfg.Hold == 0 {
		cfg.Hold = DefaultEphemeralHold
	}
	if cfg.MaxUses == 0 {
		cfg.MaxUses = DefaultEphemeralMaxUses
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultEphemeralCacheSize
	}
	switch {
	case cfg.Hold < 0 || cfg.Lifetime <= cfg.Hold:
		return nil, fmt.Errorf("ephemerals: lifetime %s must exceed hold %s (> 0)", cfg.Lifetime, cfg.Hold)
	case cfg.Lifetime > MaxEphemeralLifetime:
		return nil, fmt.Errorf("ephemerals: lifetime %s over %s", cfg.Lifetime, MaxEphemeralLifetime)
	case cfg.MaxUses < 1:
		return nil, fmt.Errorf("ephemerals: max uses %d, want >= 1", cfg.MaxUses)
	case cfg.CacheSize < -1:
		return nil, fmt.Errorf("ephemerals: cache size %d, want >= -1", cfg.CacheSize)
	}
	return &Ephemerals{cfg: cfg, want: make(chan struct{}, 1)}, nil
}

// MaxEphemeralLifetime caps an ephemeral key's lifetime: no longer than the
// longest a session key may be used (docs/PROTOCOL.md 6.6).
const MaxEphemeralLifetime = DefaultRejectAfterTime

// Wanted fires when the owner should call Maintain: a key was taken into
// service, so the next one should be made.
func (p *Ephemerals) Wanted() <-chan struct{} { return p.want }

// Maintain erases the keys whose time is up, retires the serving key when
// its time to serve is over, and makes the next key if none is ready. It
// returns when it must run again at the latest (zero: only when Wanted
// fires). The owner calls it off the swap path.
func (p *Ephemerals) Maintain() (time.Time, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	p.expireLocked(now)
	ready := p.next != nil
	p.mu.Unlock()
	if !ready {
		// One scalar multiplication, outside the lock: swaps go on.
		e, err := newEphemeral(p.cfg.Rand)
		if err != nil {
			return now.Add(time.Second), err
		}
		k := &ephKey{e: e}
		p.mu.Lock()
		p.st.Made++
		if p.next == nil {
			p.next, k = k, nil
		}
		p.mu.Unlock()
		if k != nil { // a swap made one meanwhile
			k.erase()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadlineLocked(), nil
}

// Close erases every key; later swaps make their own again.
func (p *Ephemerals) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range append(p.old, p.cur, p.next) {
		if k != nil {
			k.erase()
			p.st.Erased++
		}
	}
	p.cur, p.next, p.old = nil, nil, nil
}

// Stats returns the counters (zero for a nil Ephemerals).
func (p *Ephemerals) Stats() EphemeralStats {
	if p == nil {
		return EphemeralStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// acquire returns the key a swap starting now uses.
func (p *Ephemerals) acquire() (*ephKey, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	p.expireLocked(now)
	if p.cur == nil && p.next != nil {
		p.cur, p.next = p.next, nil
		p.cur.first = now
		p.signal()
	}
	if p.cur == nil {
		p.mu.Unlock()
		e, err := newEphemeral(p.cfg.Rand)
		if err != nil {
			return nil, err
		}
		k := &ephKey{e: e}
		p.mu.Lock()
		p.st.Made++
		p.st.MadeInline++
		if p.cur == nil {
			p.cur = k
			k.first = now
			p.signal()
		} else {
			defer k.erase() // another swap made one meanwhile: use it
			p.st.Erased++
		}
	}
	k := p.cur
	k.uses++
	p.st.Uses++
	if k.uses >= p.cfg.MaxUses {
		p.retireLocked(now)
	}
	p.mu.Unlock()
	return k, nil
}

// signal asks the owner to make the next key (non-blocking).
func (p *Ephemerals) signal() {
	select {
	case p.want <- struct{}{}:
	default:
	}
}

// retireLocked stops the serving key from taking new swaps.
func (p *Ephemerals) retireLocked(now time.Time) {
	p.cur.retired = now
	p.old = append(p.old, p.cur)
	p.cur = nil
}

// eraseAt is when a retired key is erased.
func (p *Ephemerals) eraseAt(k *ephKey) time.Time {
	t := k.retired.Add(p.cfg.Hold)
	if end := k.first.Add(p.cfg.Lifetime); end.Before(t) {
		t = end
	}
	return t
}

// expireLocked retires a serving key past its time to serve and erases
// retired keys past their deadline. Erasing takes a key's own lock, so
// it waits for an exchange in progress with it (a scalar multiplication)
// and never for another swap.
func (p *Ephemerals) expireLocked(now time.Time) {
	if p.cur != nil && !now.Before(p.cur.first.Add(p.cfg.Lifetime-p.cfg.Hold)) {
		p.retireLocked(now)
	}
	kept := p.old[:0]
	for _, k := range p.old {
		if now.Before(p.eraseAt(k)) {
			kept = append(kept, k)
			continue
		}
		k.erase()
		p.st.Erased++
	}
	clear(p.old[len(kept):])
	p.old = kept
}

// deadlineLocked is when expireLocked next has work.
func (p *Ephemerals) deadlineLocked() time.Time {
	var t time.Time
	earlier := func(x time.Time) {
		if t.IsZero() || x.Before(t) {
			t = x
		}
	}
	if p.cur != nil {
		earlier(p.cur.first.Add(p.cfg.Lifetime - p.cfg.Hold))
	}
	for _, k := range p.old {
		earlier(p.eraseAt(k))
	}
	return t
}

// shared is the exchange of key k with a peer's ephemeral key: from k's
// cache when k has met that key before, else computed (one scalar
// multiplication) and kept while k lives. A key erased meanwhile (a swap
// slower than Hold) is ErrExpired.
func (p *Ephemerals) shared(k *ephKey, peer *[32]byte) ([KeySize]byte, error) {
	p.mu.Lock()
	if s, ok := k.cache[*peer]; ok {
		p.st.CacheHits++
		out := *s
		p.mu.Unlock()
		return out, nil
	}
	p.mu.Unlock()
	k.mu.RLock()
	if k.erased {
		k.mu.RUnlock()
		return [KeySize]byte{}, fmt.Errorf("the ephemeral key of this swap was erased before the swap ended (its lifetime is %s): %w", p.cfg.Lifetime, ErrExpired)
	}
	s, err := k.e.shared(peer)
	k.mu.RUnlock()
	if err != nil {
		return s, err // a low-order key: not kept
	}
	p.mu.Lock()
	p.st.Exchanges++
	if p.cfg.CacheSize > 0 && !k.isErased() {
		if k.cache == nil {
			k.cache = make(map[[32]byte]*[KeySize]byte)
		}
		if len(k.cache) >= p.cfg.CacheSize {
			for old, v := range k.cache { // one arbitrary entry makes room
				clear(v[:])
				delete(k.cache, old)
				break
			}
		}
		kept := s
		k.cache[*peer] = &kept
	}
	p.mu.Unlock()
	return s, nil
}

// isErased reports whether k was erased (any lock but k.mu held).
func (k *ephKey) isErased() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.erased
}

// erase overwrites k's private scalar and every exchange output it keeps.
// The cache is under Ephemerals.mu: erase is called with it held, or on a
// key no other goroutine can reach any more.
func (k *ephKey) erase() {
	k.mu.Lock()
	k.e.zero()
	k.erased = true
	k.mu.Unlock()
	for _, v := range k.cache {
		clear(v[:])
	}
	k.cache = nil
}
