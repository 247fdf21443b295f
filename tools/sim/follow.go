package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/mom"
)

// A simulated MOM of a server group keeps a control session with one
// member of its list the way momgate-mom's control loop does: the choice
// of the next member and the wait before dialling it are the daemon's own
// (mom.ServerChoice: a lost session moves to the next member after a
// random 0-1 s, a NotLeader naming a member is followed at once, rounds
// without a session back off to 2 s); the connect is bounded as the
// daemon bounds it with a list, the handshake by the daemon's default
// handshake timeout.

// followConnectTimeout bounds the TCP connect of an attempt, as
// momgate-mom bounds it with a list of more than one server
// (groupConnectTimeout in mom/control.go).
const followConnectTimeout = 3 * time.Second

// attemptKind is how one control attempt of a following node ended.
type attemptKind int

// The kinds of attempt outcome, counted by the board.
const (
	kindSession  attemptKind = iota // a session was established
	kindLost                        // an established session ended
	kindRedirect                    // NotLeader naming a member, followed
	kindNoLeader                    // NotLeader naming no leader, the sender or an address outside the list
	kindRefused                     // the TCP connect failed: refused (a killed member's port) or timed out
	kindFailed                      // anything else: handshake, swap, timeout
	numKinds
)

var kindNames = [numKinds]string{"sessions", "sessions lost", "redirects followed", "NotLeader naming no member", "connects refused or timed out", "other failures"}

func (k attemptKind) String() string { return kindNames[k] }

// classify sorts a failed attempt's error: a NotLeader (its leader
// address returned), a failed TCP connect, or another failure.
func classify(err error) (attemptKind, *NotLeaderError) {
	var nl *NotLeaderError
	if errors.As(err, &nl) {
		return kindRedirect, nl
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return kindRefused, nil
	}
	return kindFailed, nil
}

// board records, for every node of a run, which member of the list it
// has a session with and since when, and counts the attempts' outcomes.
// Safe for concurrent use: each node's follower writes its own slot, the
// runner reads them all.
type board struct {
	list   []string
	index  map[string]int32
	on     []atomic.Int32 // 1 + index in list of the member the node has a session with; 0: none
	since  []atomic.Int64 // when that session was established, Unix nanoseconds
	counts [numKinds]atomic.Int64
	// killed is 1 + the index of a member known to be dead (0: none):
	// the other failures of attempts at it are counted in atKilled, not
	// in counts (a kill -9 resets the connections its kernel had accepted
	// for it, or that reached its port while it died).
	killed   atomic.Int32
	atKilled atomic.Int64

	mu     sync.Mutex
	errors []string // the first few other failures
}

// maxBoardErrors bounds the failures a board keeps the text of.
const maxBoardErrors = 5

func newBoard(list []string, nodes int) *board {
	b := &board{list: list, index: map[string]int32{}, on: make([]atomic.Int32, nodes), since: make([]atomic.Int64, nodes)}
	for i, s := range list {
		b.index[s] = int32(i)
	}
	return b
}

func (b *board) up(node int, server string, at time.Time) {
	b.since[node].Store(at.UnixNano())
	b.on[node].Store(b.index[server] + 1)
	b.counts[kindSession].Add(1)
}

func (b *board) down(node int) {
	b.on[node].Store(0)
	b.counts[kindLost].Add(1)
}

// count counts an attempt at server that ended as k with err.
func (b *board) count(k attemptKind, err error, server string) {
	if k == kindFailed && b.killed.Load() == b.index[server]+1 {
		b.atKilled.Add(1)
		return
	}
	b.counts[k].Add(1)
	if k == kindFailed && err != nil {
		b.mu.Lock()
		if len(b.errors) < maxBoardErrors {
			b.errors = append(b.errors, err.Error())
		}
		b.mu.Unlock()
	}
}

// snapshot copies the per-node slots.
func (b *board) snapshot() (on []int32, since []int64) {
	on, since = make([]int32, len(b.on)), make([]int64, len(b.since))
	for i := range b.on {
		on[i], since[i] = b.on[i].Load(), b.since[i].Load()
	}
	return on, since
}

// Counts are the attempt outcomes of the following nodes, by kind.
// FailedAtKilled are the other failures of attempts at the killed member,
// not in Failed.
type Counts struct {
	Sessions, Lost, Redirects, NoLeader, Refused, Failed, FailedAtKilled int64
}

func (b *board) counted() Counts {
	return Counts{Sessions: b.counts[kindSession].Load(), Lost: b.counts[kindLost].Load(), Redirects: b.counts[kindRedirect].Load(),
		NoLeader: b.counts[kindNoLeader].Load(), Refused: b.counts[kindRefused].Load(), Failed: b.counts[kindFailed].Load(),
		FailedAtKilled: b.atKilled.Load()}
}

// Sub is c minus an earlier d.
func (c Counts) Sub(d Counts) Counts {
	return Counts{Sessions: c.Sessions - d.Sessions, Lost: c.Lost - d.Lost, Redirects: c.Redirects - d.Redirects,
		NoLeader: c.NoLeader - d.NoLeader, Refused: c.Refused - d.Refused, Failed: c.Failed - d.Failed,
		FailedAtKilled: c.FailedAtKilled - d.FailedAtKilled}
}

// Reconnection is how the nodes came back to one member after a moment:
// how many have a session with it established after the moment, and the
// times from the moment to the first, the median, the 99th percentile and
// the last of those sessions.
type Reconnection struct {
	Nodes                   int
	Server                  int // index of the member in the list
	On                      int // nodes with a session with the member, established after the moment
	First, P50, P99, Last   time.Duration
	Elsewhere, NotConnected int // nodes with a session with another member; with none
	Stale                   int // nodes with a session with the member from before the moment
}

// reconnection reads the board's slots (on, since: snapshot) against
// server (an index in the list) and the moment t0 (Unix nanoseconds).
// Pure.
func reconnection(on []int32, since []int64, server int, t0 int64) Reconnection {
	r := Reconnection{Nodes: len(on), Server: server}
	var ds []time.Duration
	for i, s := range on {
		switch {
		case s == 0:
			r.NotConnected++
		case int(s-1) != server:
			r.Elsewhere++
		case since[i] < t0:
			r.Stale++
		default:
			ds = append(ds, time.Duration(since[i]-t0))
		}
	}
	r.On = len(ds)
	if len(ds) == 0 {
		return r
	}
	slices.Sort(ds)
	r.First, r.Last = ds[0], ds[len(ds)-1]
	r.P50, r.P99 = quantile(ds, 0.50), quantile(ds, 0.99)
	return r
}

// quantile is the q-quantile (nearest rank) of sorted ds, which is not
// empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Complete reports whether every node has a session with the member,
// established after the moment.
func (r Reconnection) Complete() bool { return r.Nodes > 0 && r.On == r.Nodes }

// mostOn is the index of the member most nodes have a session with, and
// how many (-1, 0 with none).
func mostOn(on []int32, members int) (int, int) {
	counts := make([]int, members)
	for _, s := range on {
		if s > 0 && int(s) <= members {
			counts[s-1]++
		}
	}
	best, n := -1, 0
	for i, c := range counts {
		if c > n {
			best, n = i, c
		}
	}
	return best, n
}

// follow keeps node (index i on b) in session with a member of b's list,
// by the daemon's rules (choice), until ctx ends; the node may already be
// connected, with a session established at since with choice.Current().
// It closes the node before it returns.
func follow(ctx context.Context, n *Node, i int, choice *mom.ServerChoice, b *board, since time.Time) {
	defer n.Close()
	for ctx.Err() == nil {
		// Each choice moves choice.Current() to the member to dial next.
		var wait time.Duration
		if n.Up() {
			select {
			case <-ctx.Done():
				return
			case <-n.done:
			}
			b.down(i)
			n.Close()
			_, wait = choice.Lost(time.Since(since))
		} else {
			start := time.Now()
			addr := choice.Current()
			err := n.connect(ctx, addr, daemon.DefaultHandshakeTimeout, followConnectTimeout)
			if err == nil {
				since = time.Now()
				b.up(i, addr, since)
				continue
			}
			if ctx.Err() != nil {
				return
			}
			elapsed := time.Since(start)
			kind, nl := classify(err)
			if kind == kindRedirect {
				var followed bool
				if _, wait, followed = choice.NotLeader(nl.Leader, elapsed); !followed {
					kind = kindNoLeader
				}
			} else {
				_, wait = choice.Failed(elapsed)
			}
			b.count(kind, err, addr)
		}
		if wait > 0 && pause(ctx, wait) != nil {
			return
		}
	}
}

// newChoice is a node's server choice over list, jittered as the daemon's.
func newChoice(list []string) *mom.ServerChoice { return mom.NewServerChoice(list, rand.Int64N) }
