package server

import (
	"context"
	"time"

	"github.com/momgate/momgate/proto"
)

// The deny traffic to the MOMs, coalesced (docs/KEYS.md, "Revoking a
// node"). Every Deny and DenyLift goes to every connected MOM; a burst of
// deletes used to send one frame per delete to each of them (10,000 MOMs x
// 1,000 deletes: ten million frames). Now a deny or lift that comes after
// a quiet interval is pushed at once, as before; those that follow it
// within the interval wait for its end and go together, in the order they
// were made: consecutive denies in one Deny frame, consecutive lifts in
// one DenyLift, so that no deny is lost or moved past a lift. The interval
// is DefaultDenyInterval (100 ms) after a quiet second and doubles with
// each push of the burst, up to a second: a short burst waits at most
// 100 ms, a long one costs each MOM one frame a second, however fast or
// slow its deletes come. A connected MOM refuses a deleted node at most
// one interval after the delete; the server refuses it at once, and closes
// its connection at once.

// DefaultDenyInterval is the interval deny traffic is coalesced over after
// a quiet interval.
const DefaultDenyInterval = 100 * time.Millisecond

// denyIntervalGrowth bounds the interval a long burst grows it to: ten
// times the first.
const denyIntervalGrowth = 10

// denyOp is one deny or lift waiting to be pushed.
type denyOp struct {
	lift  bool
	entry proto.NodeAddr
}

// denyPush is the coalescer's state, guarded by Server.mu.
type denyPush struct {
	pending  []denyOp
	last     time.Time     // when the last push went out
	interval time.Duration // the current interval; 0: the first
	wake     chan struct{} // tells the pusher a push waits
}

// firstDenyInterval is the interval after a quiet one (0: none).
func (s *Server) firstDenyInterval() time.Duration {
	switch {
	case s.cfg.DenyInterval < 0:
		return 0
	case s.cfg.DenyInterval == 0:
		return DefaultDenyInterval
	}
	return s.cfg.DenyInterval
}

// denyInterval is the current interval; the caller holds s.mu.
func (s *Server) denyInterval() time.Duration {
	return max(s.dp.interval, s.firstDenyInterval())
}

// queueDenyLocked queues denies (lift false) or lifts of entries for every
// connected MOM: pushed at once after a quiet interval, else at the end
// of the interval by runDenyPusher. The caller holds s.mu.
func (s *Server) queueDenyLocked(lift bool, entries ...proto.NodeAddr) {
	for _, e := range entries {
		s.dp.pending = append(s.dp.pending, denyOp{lift: lift, entry: e})
	}
	now := time.Now()
	switch gap := now.Sub(s.dp.last); {
	case gap >= denyIntervalGrowth*s.firstDenyInterval():
		// After a quiet second: at once, and a burst that may follow
		// starts from the first interval.
		s.dp.interval = 0
		s.flushDenyLocked(now)
		return
	case gap >= s.denyInterval():
		// Within a burst, but its interval is over: at once too, and
		// the next interval is longer.
		s.growDenyIntervalLocked()
		s.flushDenyLocked(now)
		return
	}
	select {
	case s.dp.wake <- struct{}{}:
	default:
	}
}

// growDenyIntervalLocked doubles the interval, up to denyIntervalGrowth
// times the first. The caller holds s.mu.
func (s *Server) growDenyIntervalLocked() {
	s.dp.interval = min(2*s.denyInterval(), denyIntervalGrowth*s.firstDenyInterval())
}

// flushDenyLocked pushes what waits to every connected MOM: each run of
// denies as Deny frames, each run of lifts as DenyLift frames, in order.
// The caller holds s.mu.
func (s *Server) flushDenyLocked(now time.Time) {
	ops := s.dp.pending
	s.dp.pending = nil
	if len(ops) == 0 {
		return
	}
	s.dp.last = now
	for len(ops) > 0 {
		n := 1
		for n < len(ops) && n < maxDenyEntries && ops[n].lift == ops[0].lift {
			n++
		}
		entries := make([]proto.NodeAddr, n)
		for i := range n {
			entries[i] = ops[i].entry
		}
		var frame []byte
		if ops[0].lift {
			frame = proto.Marshal(&proto.DenyLift{Entries: entries})
		} else {
			frame = proto.Marshal(&proto.Deny{Entries: entries})
		}
		for _, c := range s.conns {
			s.enqueueLocked(c, pushItem{pushDeny, frame})
		}
		ops = ops[n:]
	}
}

// runDenyPusher pushes coalesced deny traffic at the end of each interval
// until ctx ends.
func (s *Server) runDenyPusher(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.dp.wake:
		}
		s.mu.Lock()
		wait := time.Until(s.dp.last.Add(s.denyInterval()))
		s.mu.Unlock()
		if wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		s.mu.Lock()
		if len(s.dp.pending) > 0 {
			s.growDenyIntervalLocked() // the burst goes on
		}
		s.flushDenyLocked(time.Now())
		s.mu.Unlock()
	}
}
