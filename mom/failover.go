package mom

import "time"

// Which server the control loop dials next (docs/HA.md section 7): a pure
// state machine, events in, the next server and the wait before dialling
// it out. controlLoop is its shell; the randomness of the jitter is a
// parameter, so the tests drive it without sockets or clocks.
//
// The rules:
//   - The MOM stays on the server it reached. When a session that was
//     established ends, it moves to the next server in the list (the one it
//     lost is the least likely to lead now) after a random delay of up to
//     the spread (a failover moves every MOM at once: the spread keeps them
//     from reaching the new leader in the same instant); with one server it
//     retries that server after a short jittered pause, as before lists
//     existed.
//   - An attempt that fails without a session (refused, closed, timed
//     out, handshake refused) moves to the next server after a short
//     jittered pause.
//   - A NotLeader naming a member of the list sends the MOM there at once;
//     one naming no leader, an address outside the list, or the server
//     that sent it is a failed attempt. A forged redirect therefore
//     reaches at most another configured server, which must still prove
//     the pinned group identity.
//   - Every attempt without a session counts towards a round of the
//     list's length; after a round that found no server the MOM waits the
//     round backoff (jittered, doubling to the maximum) before the next
//     round. So a list where every server refuses, or members that
//     redirect to each other, never makes a tight loop.
//   - A reconnect for a new protocol mode goes back to the same server at
//     once, as before.

// attempt is how one control attempt ended.
type attempt int

// Attempt outcomes.
const (
	// attemptFailed: no session (dial, handshake or swap failed).
	attemptFailed attempt = iota
	// attemptEnded: an established session ended.
	attemptEnded
	// attemptRedirect: the server answered NotLeader.
	attemptRedirect
	// attemptReconnect: the session ended to reconnect for a new
	// protocol mode (errProtocolChanged).
	attemptReconnect
)

// outcome is one event of the failover machine.
type outcome struct {
	Kind attempt
	// Elapsed is how long the attempt lasted; an attempt longer than the
	// maximum backoff resets the backoff (the server was there a while).
	Elapsed time.Duration
	// Leader is, for attemptRedirect, the index in the list of the leader
	// the NotLeader named (matchServer), or -1: none known, or not in the
	// list.
	Leader int
}

// choice is the machine's answer: dial Server (an index in the list)
// after Wait.
type choice struct {
	Server int
	Wait   time.Duration
	// Redirected: the choice follows a NotLeader.
	Redirected bool
}

// failover is the state of the server choice.
type failover struct {
	n        int           // servers in the list, >= 1
	min, max time.Duration // bounds of the backoff
	spread   time.Duration // the delay after a lost session is uniform in [0, spread] (n > 1)
	rand     func(n int64) int64
	cur      int           // the server dialled last
	tried    int           // attempts without a session in this round
	backoff  time.Duration // the round backoff before its jitter
}

// newFailover returns the machine for a list of n servers, starting on the
// first. rnd(n) returns a number in [0, n).
func newFailover(n int, minBackoff, maxBackoff, spread time.Duration, rnd func(n int64) int64) *failover {
	if n < 1 {
		n = 1
	}
	return &failover{n: n, min: minBackoff, max: maxBackoff, spread: spread, rand: rnd, backoff: minBackoff}
}

// current is the index of the server dialled last (or first, at start).
func (f *failover) current() int { return f.cur }

// next takes how the attempt on the current server ended and returns the
// server to dial next and how long to wait first.
func (f *failover) next(o outcome) choice {
	if o.Kind == attemptReconnect {
		f.tried, f.backoff = 0, f.min
		return choice{Server: f.cur}
	}
	lost := o.Kind == attemptEnded
	if lost || o.Elapsed > f.max {
		// The server was healthy: come back quickly (the jitter still
		// spreads thousands of MOMs), so a MOM catches up with a key
		// rotation soon after a failover or a restart.
		f.tried, f.backoff = 0, f.min
	}
	f.tried++
	target := (f.cur + 1) % f.n
	redirect := o.Kind == attemptRedirect && o.Leader >= 0 && o.Leader < f.n && o.Leader != f.cur
	if redirect {
		target = o.Leader
	}
	f.cur = target
	if f.tried >= f.n {
		// A round found no server: back off before the next one.
		f.tried = 0
		wait := f.jitter(f.backoff)
		f.backoff = min(2*f.backoff, f.max)
		return choice{Server: target, Wait: wait, Redirected: redirect}
	}
	if redirect {
		return choice{Server: target, Redirected: true}
	}
	if lost && f.spread > 0 {
		return choice{Server: target, Wait: time.Duration(f.rand(int64(f.spread) + 1))}
	}
	return choice{Server: target, Wait: f.jitter(f.min)}
}

// jitter is d/2 plus a random part of d/2: spread, never zero for d > 0.
func (f *failover) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(f.rand(int64(d/2)+1))
}
