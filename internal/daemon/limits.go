package daemon

import (
	"fmt"
	"time"

	"github.com/momgate/momgate/internal/connlimit"

	"github.com/momgate/momgate/session"
)

// SourceLimits validates the per-source connection limit flags and returns
// the limiter configuration. -1 turns a limit off; 0 is refused as
// ambiguous.
func SourceLimits(maxPending int, rate float64, burst int) (connlimit.Config, error) {
	var cfg connlimit.Config
	switch {
	case maxPending == -1:
		cfg.MaxPending = -1
	case maxPending >= 1:
		cfg.MaxPending = maxPending
	default:
		return cfg, fmt.Errorf("--max-preauth-per-source %d: want a count >= 1, or -1 for no limit", maxPending)
	}
	switch {
	case rate == -1:
		cfg.Rate = -1
	case rate > 0:
		cfg.Rate = rate
	default:
		return cfg, fmt.Errorf("--accept-rate-per-source %g: want connections per second > 0, or -1 for no limit", rate)
	}
	if burst < 1 {
		return cfg, fmt.Errorf("--accept-burst-per-source %d: want a count >= 1", burst)
	}
	cfg.Burst = burst
	if err := cfg.Check(); err != nil {
		return cfg, fmt.Errorf("per-source limits: %w", err)
	}
	return cfg, nil
}

// HandshakeTimeout validates the handshake deadline flag.
func HandshakeTimeout(d time.Duration) (time.Duration, error) {
	if d <= 0 || d > time.Hour {
		return 0, fmt.Errorf("--handshake-timeout %s: want a duration in (0, 1h]", d)
	}
	return d, nil
}

// TestClock returns the daemon's wall clock: time.Now shifted by offset.
// A non-zero offset exists only for tests (the hidden --test-clock-offset
// flag): it plays a host whose clock was stepped, e.g. back one hour.
// Deadlines and timers keep using the real monotonic clock.
func TestClock(offset time.Duration) (func() time.Time, error) {
	if offset < -100*365*24*time.Hour || offset > 100*365*24*time.Hour {
		return nil, fmt.Errorf("--test-clock-offset %s: out of range", offset)
	}
	if offset == 0 {
		return time.Now, nil
	}
	return func() time.Time { return time.Now().Add(offset) }, nil
}

// TestSessionLimits returns the limits of a daemon's sealed sessions: the
// protocol's defaults (docs/PROTOCOL.md 6.6), or, for tests only (the
// hidden --test-session-rekey flag), keys that rekey every rekey, so that
// a test sees rekeys while jobs poll. The reject limit then leaves 10 s
// for the rekey to complete, as a loaded test machine needs.
func TestSessionLimits(rekey time.Duration) (session.Limits, error) {
	switch {
	case rekey == 0:
		return session.Limits{}, nil
	case rekey < 10*time.Millisecond || rekey > session.DefaultRekeyAfterTime:
		return session.Limits{}, fmt.Errorf("--test-session-rekey %s: want a duration in [10ms, %s]", rekey, session.DefaultRekeyAfterTime)
	}
	return session.Limits{RekeyAfterTime: rekey, RejectAfterTime: rekey + 10*time.Second}, nil
}
