package daemon

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/session"
)

// MaintainEphemerals is the owner of a daemon's reused ephemeral key
// (session.Ephemerals) until ctx ends: it makes the next key ahead of the
// swaps that will take it, retires and erases keys at their deadlines, and
// erases every key when it stops.
func MaintainEphemerals(ctx context.Context, p *session.Ephemerals, log logrus.FieldLogger) {
	defer p.Close()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next, err := p.Maintain()
		wait := time.Until(next)
		switch {
		case err != nil:
			log.WithError(err).Warn("session ephemeral keys: making the next key failed; swaps make their own")
			wait = time.Second
		case next.IsZero():
			wait = time.Hour // until Wanted
		case wait < 0:
			wait = 0
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.Wanted():
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}
