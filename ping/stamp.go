package ping

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultReserve is how far ahead of a timestamp issued at the wall clock a
// Stamper persists its ceiling, so that under load it writes its store
// about once per reserve.
const DefaultReserve = 10 * time.Second

// AheadStep is how far ahead of a timestamp issued above the wall clock
// (last + 1: after a restart, or a clock set back) a Stamper persists its
// ceiling. Such timestamps advance 1 ns each, so a small step still means
// few writes; and since a restart resumes at the stored ceiling, a small
// step keeps quick restarts from ratcheting the timestamps ahead of the
// wall clock (docs/PROTOCOL.md section 3.3).
const AheadStep = time.Millisecond

// ErrStamperClosed means Next was called after Close.
var ErrStamperClosed = errors.New("stamper closed")

// CeilingStore persists a Stamper's ceiling: no timestamp above the stored
// value has been issued.
type CeilingStore interface {
	LoadCeiling() (uint64, error)
	StoreCeiling(uint64) error
}

// Stamper issues strictly increasing timestamps, max(wall clock, last+1) in
// nanoseconds, across restarts and backward steps of the wall clock
// (docs/PROTOCOL.md section 3.3). It is safe for concurrent use.
type Stamper struct {
	mu      sync.Mutex
	now     func() time.Time
	store   CeilingStore
	reserve uint64
	last    uint64
	ceiling uint64
	closed  bool
}

// NewStamper loads the persisted ceiling and starts issuing above it.
// reserve <= 0 means DefaultReserve.
func NewStamper(now func() time.Time, store CeilingStore, reserve time.Duration) (*Stamper, error) {
	if reserve <= 0 {
		reserve = DefaultReserve
	}
	c, err := store.LoadCeiling()
	if err != nil {
		return nil, fmt.Errorf("load timestamp ceiling: %w", err)
	}
	return &Stamper{now: now, store: store, reserve: uint64(reserve), last: c, ceiling: c}, nil
}

// Next returns the next timestamp. It fails only if a new ceiling cannot be
// persisted (or after Close), in which case no timestamp is issued.
func (s *Stamper) Next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrStamperClosed
	}
	t, step := s.wall(), s.reserve
	if t <= s.last {
		// Ahead of the wall clock: reserve a small step, not the whole
		// reserve, or every quick restart would move the stamps a reserve
		// further ahead.
		t, step = s.last+1, min(uint64(AheadStep), s.reserve)
	}
	if t > s.ceiling {
		c := t + step
		if err := s.store.StoreCeiling(c); err != nil {
			return 0, fmt.Errorf("persist timestamp ceiling: %w", err)
		}
		s.ceiling = c
	}
	s.last = t
	return t, nil
}

func (s *Stamper) wall() uint64 {
	if w := s.now().UnixNano(); w > 0 {
		return uint64(w)
	}
	return 0
}

// Raise makes every later timestamp greater than floor: for a stamper
// whose ceiling was lost, once a higher stamp of this node is known (the
// server's mark for it). It issues and writes nothing; the next Next
// persists a ceiling above floor.
func (s *Stamper) Raise(floor uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if floor > s.last {
		s.last = floor
	}
}

// Ahead returns how far the last issued timestamp (or the loaded ceiling)
// is ahead of the wall clock, 0 if it is not: what a restart loop or a
// clock set back costs, for the daemon to say at start.
func (s *Stamper) Ahead() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.wall(); s.last > w {
		return time.Duration(s.last - w)
	}
	return 0
}

// Close stores the last issued timestamp as the ceiling, so that a clean
// restart resumes exactly there instead of at the reserved ceiling, and
// makes Next fail from then on. A crash skips it and costs at most the
// reserve.
func (s *Stamper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.last >= s.ceiling {
		return nil
	}
	if err := s.store.StoreCeiling(s.last); err != nil {
		return fmt.Errorf("persist timestamp ceiling at close: %w", err)
	}
	s.ceiling = s.last
	return nil
}

// Last returns the most recently issued timestamp (or the loaded ceiling).
func (s *Stamper) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// MemCeiling is an in-memory CeilingStore for tests and benchmarks.
type MemCeiling struct {
	mu     sync.Mutex
	value  uint64
	writes int
}

// LoadCeiling returns the stored value.
func (m *MemCeiling) LoadCeiling() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.value, nil
}

// StoreCeiling records v.
func (m *MemCeiling) StoreCeiling(v uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.value = v
	m.writes++
	return nil
}

// Writes counts StoreCeiling calls.
func (m *MemCeiling) Writes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writes
}
