package ping

import (
	"errors"
	"testing"
	"time"
)

// lifeOf runs one life of a stamper on store: n stamps with the clock
// advancing by tick after each, then (crash) nothing or (clean) Close. It
// checks that every stamp is above floor and returns the last.
func lifeOf(t *testing.T, clock *fakeClock, store CeilingStore, n int, tick time.Duration, clean bool, floor uint64) uint64 {
	t.Helper()
	s, err := NewStamper(clock.Now, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		ts, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ts <= floor {
			t.Fatalf("stamp %d reused or lowered: %d <= %d", i, ts, floor)
		}
		floor = ts
		clock.Add(tick)
	}
	if clean {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return floor
}

// TestStamperRestartLoopDoesNotDrift: 100 crashes in quick succession (a
// supervisor restarting a crashing daemon), each after a few stamps and
// less than a millisecond of wall time, leave the stamps within 1 s of the
// wall clock once the wall clock has covered the reserve of the first
// crash; no stamp is ever reused or lowered. Before AheadStep each restart
// pushed the ceiling a whole reserve (10 s) further ahead.
func TestStamperRestartLoopDoesNotDrift(t *testing.T) {
	for _, tick := range []time.Duration{0, time.Microsecond, 100 * time.Microsecond} {
		clock := &fakeClock{t: epoch}
		store := &MemCeiling{}
		var last uint64
		for i := 0; i < 100; i++ {
			last = lifeOf(t, clock, store, 3, tick, false, last)
		}
		ahead := time.Duration(last - uint64(clock.Now().UnixNano()))
		if ahead > DefaultReserve+time.Second {
			t.Fatalf("tick %v: after 100 crashes the stamps run %v ahead, more than the reserve and 1 s", tick, ahead)
		}
		clock.Add(DefaultReserve)
		last = lifeOf(t, clock, store, 1, 0, false, last)
		if d := time.Duration(last - uint64(clock.Now().UnixNano())); last > uint64(clock.Now().UnixNano()) && d > time.Second {
			t.Fatalf("tick %v: once the clock caught up the stamps run %v ahead", tick, d)
		}
	}
}

// TestStamperCleanRestartsResumeExactly: Close stores the last stamp, so
// 100 clean restarts leave the stamps at the wall clock.
func TestStamperCleanRestartsResumeExactly(t *testing.T) {
	clock := &fakeClock{t: epoch}
	store := &MemCeiling{}
	var last uint64
	for i := 0; i < 100; i++ {
		last = lifeOf(t, clock, store, 3, 0, true, last)
	}
	if ahead := time.Duration(last - uint64(clock.Now().UnixNano())); ahead > time.Microsecond {
		t.Fatalf("after 100 clean restarts the stamps run %v ahead", ahead)
	}
	s, err := NewStamper(clock.Now, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); !errors.Is(err, ErrStamperClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

// TestStamperAheadWritesRarely: stamps issued ahead of the wall clock (a
// clock set back an hour) persist the ceiling once per AheadStep of
// stamps, and Ahead reports the lead.
func TestStamperAheadWritesRarely(t *testing.T) {
	clock := &fakeClock{t: epoch}
	store := &MemCeiling{}
	s, err := NewStamper(clock.Now, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	clock.Add(-time.Hour)
	before := store.Writes()
	prev := s.Last()
	for i := 0; i < 10000; i++ {
		ts, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ts != prev+1 {
			t.Fatalf("ahead of the clock a stamp is last+1: %d after %d", ts, prev)
		}
		prev = ts
	}
	if w := store.Writes() - before; w > 1 {
		t.Fatalf("10,000 stamps ahead of the clock wrote the ceiling %d times", w)
	}
	if a := s.Ahead(); a < time.Hour || a > time.Hour+time.Second {
		t.Fatalf("Ahead = %v, want about an hour", a)
	}
}

// TestStamperRaise: after Raise every stamp is above the floor, and the
// next one persists a ceiling above it.
func TestStamperRaise(t *testing.T) {
	clock := &fakeClock{t: epoch}
	store := &MemCeiling{}
	s, err := NewStamper(clock.Now, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	floor := uint64(epoch.Add(time.Hour).UnixNano())
	s.Raise(floor)
	s.Raise(1) // never lowers
	ts, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	if ts != floor+1 {
		t.Fatalf("after Raise: %d, want %d", ts, floor+1)
	}
	if c, _ := store.LoadCeiling(); c <= ts {
		t.Fatalf("ceiling %d not above the stamp %d", c, ts)
	}
}
