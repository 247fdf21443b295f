package mom

import (
	"testing"
	"time"
)

const (
	tMin = 100 * time.Millisecond
	tMax = 2 * time.Second
)

// noJitter makes the jitter its largest: d/2 + d/2 = d.
func noJitter(n int64) int64 { return n - 1 }

// lowJitter makes the jitter its smallest: d/2.
func lowJitter(int64) int64 { return 0 }

type step struct {
	o      outcome
	server int
	wait   time.Duration
	redir  bool
}

func failed() outcome          { return outcome{Kind: attemptFailed, Leader: -1} }
func ended() outcome           { return outcome{Kind: attemptEnded, Elapsed: time.Minute, Leader: -1} }
func redirectTo(i int) outcome { return outcome{Kind: attemptRedirect, Leader: i} }
func reconnect() outcome       { return outcome{Kind: attemptReconnect, Leader: -1} }
func failedAfter(d time.Duration) outcome {
	return outcome{Kind: attemptFailed, Elapsed: d, Leader: -1}
}

func runSteps(t *testing.T, f *failover, steps []step) {
	t.Helper()
	for i, s := range steps {
		c := f.next(s.o)
		if c.Server != s.server || c.Wait != s.wait || c.Redirected != s.redir {
			t.Fatalf("step %d (%+v): got server %d wait %s redirected %v; want %d %s %v", i, s.o, c.Server, c.Wait, c.Redirected, s.server, s.wait, s.redir)
		}
		if f.current() != c.Server {
			t.Fatalf("step %d: current %d, choice %d", i, f.current(), c.Server)
		}
	}
}

// One server: exactly the backoff of before lists (doubling to the
// maximum; back to the minimum after a session or a long attempt; at
// once for a protocol change).
func TestFailoverSingleServer(t *testing.T) {
	f := newFailover(1, tMin, tMax, 0, noJitter)
	if f.current() != 0 {
		t.Fatalf("starts on %d", f.current())
	}
	runSteps(t, f, []step{
		{o: failed(), server: 0, wait: 100 * time.Millisecond},
		{o: failed(), server: 0, wait: 200 * time.Millisecond},
		{o: failed(), server: 0, wait: 400 * time.Millisecond},
		{o: failed(), server: 0, wait: 800 * time.Millisecond},
		{o: failed(), server: 0, wait: 1600 * time.Millisecond},
		{o: failed(), server: 0, wait: 2 * time.Second},
		{o: failed(), server: 0, wait: 2 * time.Second}, // capped
		{o: ended(), server: 0, wait: 100 * time.Millisecond},
		{o: failed(), server: 0, wait: 200 * time.Millisecond},
		{o: failedAfter(3 * time.Second), server: 0, wait: 100 * time.Millisecond},
		{o: reconnect(), server: 0, wait: 0},
		{o: failed(), server: 0, wait: 100 * time.Millisecond},
		// A redirect with one server can only name itself (or nothing).
		{o: redirectTo(0), server: 0, wait: 200 * time.Millisecond},
		{o: redirectTo(-1), server: 0, wait: 400 * time.Millisecond},
	})
}

// Three servers: the session on s0 ends (kill -9), the MOM moves on at
// once (a short pause), walks the list, backs off after each round that
// found nothing, and settles on the one that answers.
func TestFailoverWalksTheList(t *testing.T) {
	f := newFailover(3, tMin, tMax, 0, noJitter)
	runSteps(t, f, []step{
		{o: ended(), server: 1, wait: tMin},      // s0 lost: s1 next
		{o: failed(), server: 2, wait: tMin},     // s1 refused: s2
		{o: failed(), server: 0, wait: tMin},     // s2 refused: round done -> round backoff (min)
		{o: failed(), server: 1, wait: tMin},     // s0 refused
		{o: failed(), server: 2, wait: tMin},     // s1 refused
		{o: failed(), server: 0, wait: 2 * tMin}, // round 2 done: backoff doubled
		{o: failed(), server: 1, wait: tMin},     // within a round: short pause only
		{o: failed(), server: 2, wait: tMin},     //
		{o: failed(), server: 0, wait: 4 * tMin}, // round 3
		{o: ended(), server: 1, wait: tMin},      // a session on s0 came and went: backoff reset
		{o: failed(), server: 2, wait: tMin},     //
		{o: failed(), server: 0, wait: tMin},     // first round after a session: minimum again
		{o: reconnect(), server: 0, wait: 0},     // mode change: same server at once
	})
}

// The wait is bounded by the maximum, whatever happens: many rounds of
// refusals never exceed it, and never reach zero without a redirect.
func TestFailoverBounded(t *testing.T) {
	for _, jit := range []func(int64) int64{noJitter, lowJitter} {
		f := newFailover(3, tMin, tMax, 0, jit)
		var total time.Duration
		for i := 0; i < 300; i++ {
			c := f.next(failed())
			if c.Wait <= 0 || c.Wait > tMax {
				t.Fatalf("attempt %d: wait %s outside (0, %s]", i, c.Wait, tMax)
			}
			total += c.Wait
		}
		// 100 rounds of 3: once the round backoff reached the maximum
		// (after a few rounds), each round waits at least half of it.
		if total < 90*tMax/2 {
			t.Fatalf("300 refusals waited only %s in all", total)
		}
	}
}

// A NotLeader naming a member of the list is followed at once; one
// naming nobody, the sender itself or an address outside the list (-1)
// is a failed attempt; redirects that chase each other complete a round
// and back off like refusals: no tight loop.
func TestFailoverRedirects(t *testing.T) {
	f := newFailover(3, tMin, tMax, 0, noJitter)
	runSteps(t, f, []step{
		{o: redirectTo(2), server: 2, wait: 0, redir: true}, // s0 says s2 leads
		{o: ended(), server: 0, wait: tMin},                 // s2 lost
		{o: redirectTo(-1), server: 1, wait: tMin},          // s0: no leader known (or outside the list)
		{o: redirectTo(1), server: 2, wait: tMin},           // s1 names itself: not followed; round done below
		{o: redirectTo(1), server: 1, wait: 0, redir: true},
		// s1 names s2, s2 names s1 ...: each counts towards the round.
		{o: redirectTo(2), server: 2, wait: 0, redir: true},
		{o: redirectTo(1), server: 1, wait: 2 * tMin, redir: true}, // round done: backoff, then follow
		{o: redirectTo(2), server: 2, wait: 0, redir: true},
		{o: redirectTo(1), server: 1, wait: 0, redir: true},
		{o: redirectTo(2), server: 2, wait: 4 * tMin, redir: true},
		{o: redirectTo(7), server: 0, wait: tMin}, // out of range: a failure
	})
}

// A redirect chase alone never runs more than a round without waiting.
func TestFailoverRedirectChaseWaits(t *testing.T) {
	for n := 1; n <= 5; n++ {
		f := newFailover(n, tMin, tMax, 0, lowJitter)
		free := 0
		for i := 0; i < 100; i++ {
			c := f.next(redirectTo((f.current() + 1) % n))
			if c.Wait == 0 {
				free++
				if free >= n {
					t.Fatalf("%d servers: %d redirects in a row without a wait", n, free)
				}
			} else {
				free = 0
			}
		}
	}
}

// With a spread, a lost session's next server is dialled after a random
// delay within [0, spread] (the MOMs of one failover do not all reach the
// new leader at once); everything else is unchanged, and one server keeps
// its short pause whatever the spread.
func TestFailoverSpread(t *testing.T) {
	const spread = time.Second
	f := newFailover(3, tMin, tMax, spread, noJitter)
	runSteps(t, f, []step{
		{o: ended(), server: 1, wait: spread},
		{o: failed(), server: 2, wait: tMin},
		{o: redirectTo(0), server: 0, wait: tMin, redir: true}, // the round ends: its backoff
	})
	f = newFailover(3, tMin, tMax, spread, lowJitter)
	if c := f.next(ended()); c.Wait != 0 || c.Server != 1 {
		t.Fatalf("lowest spread: %+v", c)
	}
	f = newFailover(1, tMin, tMax, spread, noJitter)
	if c := f.next(ended()); c.Wait != tMin {
		t.Fatalf("one server: wait %s, want %s", c.Wait, tMin)
	}
}
