package mom

import (
	"net/netip"
	"time"
)

// Default bounds of the reconnect backoff (Config.BackoffMin, BackoffMax).
const (
	DefaultBackoffMin = 100 * time.Millisecond
	DefaultBackoffMax = 10 * time.Second
)

// ServerChoice is the control loop's choice of the next server of a
// --server list (failover.go, and the judging of a NotLeader's address
// against the list), with the daemon's default backoff. It is exported
// for programs that drive many simulated MOMs (tools/sim), so that they
// move between the members of a group by the MOM's own rules and timing
// rather than by a copy of them. Pure: no I/O, no clock; not safe for
// concurrent use.
type ServerChoice struct {
	list []string
	f    *failover
}

// NewServerChoice returns the choice over list (HOST:PORT elements, as
// ParseServers gives them), starting on its first server. rnd(n) returns
// a number in [0, n) (math/rand/v2's Int64N); it makes the jitter.
func NewServerChoice(list []string, rnd func(n int64) int64) *ServerChoice {
	return &ServerChoice{list: list, f: listFailover(len(list), DefaultBackoffMin, DefaultBackoffMax, rnd)}
}

// Current is the server to dial now.
func (s *ServerChoice) Current() string { return s.list[s.f.current()] }

// Lost takes the end of a session established with Current, elapsed after
// the attempt began, and returns the server to dial next and the wait
// before dialling it.
func (s *ServerChoice) Lost(elapsed time.Duration) (next string, wait time.Duration) {
	return s.step(outcome{Kind: attemptEnded, Elapsed: elapsed, Leader: -1})
}

// Failed takes an attempt on Current that ended without a session (refused,
// closed, timed out, handshake refused) and returns the next server and
// the wait.
func (s *ServerChoice) Failed(elapsed time.Duration) (next string, wait time.Duration) {
	return s.step(outcome{Kind: attemptFailed, Elapsed: elapsed, Leader: -1})
}

// NotLeader takes a NotLeader from Current naming leader (invalid: no
// leader known) and returns the next server and the wait. followed says
// whether the redirect was followed: the leader is in the list and is not
// Current; otherwise the attempt counts as failed, as in controlLoop. A
// list element given as a host name never matches here (controlLoop
// resolves it): give a simulated MOM's list as IP addresses.
func (s *ServerChoice) NotLeader(leader netip.AddrPort, elapsed time.Duration) (next string, wait time.Duration, followed bool) {
	i := matchServer(s.list, leader, nil)
	if i == s.f.current() {
		i = -1
	}
	next, wait = s.step(outcome{Kind: attemptRedirect, Elapsed: elapsed, Leader: i})
	return next, wait, i >= 0
}

func (s *ServerChoice) step(o outcome) (string, time.Duration) {
	c := s.f.next(o)
	return s.list[c.Server], c.Wait
}
