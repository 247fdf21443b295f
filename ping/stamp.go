package ping

import (
	"fmt"
	"sync"
	"time"
)

// DefaultReserve is how far ahead of the last issued timestamp a Stamper
// persists its ceiling, so it writes to its store about once per reserve.
const DefaultReserve = 10 * time.Second

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
// persisted, in which case no timestamp is issued.
func (s *Stamper) Next() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := uint64(0)
	if w := s.now().UnixNano(); w > 0 {
		t = uint64(w)
	}
	if t <= s.last {
		t = s.last + 1
	}
	if t > s.ceiling {
		c := t + s.reserve
		if err := s.store.StoreCeiling(c); err != nil {
			return 0, fmt.Errorf("persist timestamp ceiling: %w", err)
		}
		s.ceiling = c
	}
	s.last = t
	return t, nil
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
