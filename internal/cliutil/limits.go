package cliutil

import (
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/config"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/daemon"

	"github.com/momgate/momgate/session"
)

// LimitFlags are the per-source limits on unauthenticated connections
// (docs/SECURITY.md): run flags, environment variables and config keys.
func LimitFlags(envPrefix string) []cli.Flag {
	env := func(name string) []string { return []string{EnvVar(envPrefix, name)} }
	return []cli.Flag{
		&cli.IntFlag{Name: "max-preauth-per-source", Value: connlimit.DefaultMaxPending, EnvVars: env("max-preauth-per-source"),
			Usage: "connections one source IP may have in the handshake at once; more are refused as rate_limited (-1: no limit)"},
		&cli.Float64Flag{Name: "accept-rate-per-source", Value: connlimit.DefaultRate, EnvVars: env("accept-rate-per-source"),
			Usage: "new connections per second one source IP may open, sustained; more are refused as rate_limited (-1: no limit)"},
		&cli.IntFlag{Name: "accept-burst-per-source", Value: connlimit.DefaultBurst, EnvVars: env("accept-burst-per-source"),
			Usage: "new connections one source IP may open at once before --accept-rate-per-source applies"},
	}
}

// LimitChecks validate the limit keys of a config file.
func LimitChecks() map[string]config.Check {
	return map[string]config.Check{
		"max-preauth-per-source": func(v string, _ config.Values) error {
			n, err := strconv.Atoi(v)
			if err == nil {
				_, err = daemon.SourceLimits(n, 1, 1)
			}
			return err
		},
		"accept-rate-per-source": func(v string, _ config.Values) error {
			r, err := strconv.ParseFloat(v, 64)
			if err == nil {
				_, err = daemon.SourceLimits(1, r, 1)
			}
			return err
		},
		"accept-burst-per-source": func(v string, _ config.Values) error {
			n, err := strconv.Atoi(v)
			if err == nil {
				_, err = daemon.SourceLimits(1, 1, n)
			}
			return err
		},
	}
}

// TestFlags are hidden run flags for tests only (docs/SECURITY.md, "Test-only
// hooks"): no environment variables, not config keys.
func TestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "handshake-timeout", Value: 10 * time.Second, Hidden: true,
			Usage: "deadline for an unauthenticated connection to complete its handshake"},
		&cli.DurationFlag{Name: "test-clock-offset", Hidden: true,
			Usage: "TEST ONLY: shift this daemon's wall clock (timestamps, freshness) by this much, e.g. -1h"},
		&cli.DurationFlag{Name: "test-session-rekey", Hidden: true,
			Usage: "TEST ONLY: rekey sealed sessions this often instead of every 120 s, e.g. 500ms"},
		&cli.BoolFlag{Name: "test-without-sessions", Hidden: true,
			Usage: "TEST ONLY: behave as a daemon of before sealed sessions (a mixed cluster)"},
	}
}

// LimitSettings are what LimitFlags and TestFlags say.
type LimitSettings struct {
	Limits    connlimit.Config
	Handshake time.Duration
	Now       func() time.Time // nil: time.Now
	// Sessions are the sealed sessions' limits (test-only
	// --test-session-rekey); WithoutSessions plays a daemon of before them.
	Sessions        session.Limits
	WithoutSessions bool
}

// ReadLimits reads LimitFlags and TestFlags.
func ReadLimits(c *cli.Context) (LimitSettings, error) {
	var s LimitSettings
	var err error
	if s.Limits, err = daemon.SourceLimits(c.Int("max-preauth-per-source"), c.Float64("accept-rate-per-source"), c.Int("accept-burst-per-source")); err != nil {
		return s, err
	}
	if s.Handshake, err = daemon.HandshakeTimeout(c.Duration("handshake-timeout")); err != nil {
		return s, err
	}
	if s.Now, err = daemon.TestClock(c.Duration("test-clock-offset")); err != nil {
		return s, err
	}
	s.WithoutSessions = c.Bool("test-without-sessions")
	s.Sessions, err = daemon.TestSessionLimits(c.Duration("test-session-rekey"))
	return s, err
}
