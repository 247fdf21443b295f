package daemon

import (
	"errors"
	"sync/atomic"
)

// Readiness is the part of a daemon's /readyz answer that follows its
// life: not ready while it starts, ready once its listeners and admin
// socket are up, not ready again once it shuts down. The zero value is
// "starting". It is safe for concurrent use.
type Readiness struct {
	why atomic.Pointer[string] // nil: starting; "" ready; else why not
}

// Ready marks the daemon ready.
func (r *Readiness) Ready() { r.set("") }

// Stopping marks the daemon as shutting down.
func (r *Readiness) Stopping() { r.set("shutting down") }

func (r *Readiness) set(why string) { r.why.Store(&why) }

// Err is nil when ready, or says why not.
func (r *Readiness) Err() error {
	why := r.why.Load()
	switch {
	case why == nil:
		return errors.New("starting: listeners not up yet")
	case *why != "":
		return errors.New(*why)
	}
	return nil
}
