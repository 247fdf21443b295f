// Package daemon is what the two momgate daemons share: the start-up glue
// of their commands (loggers, the audit stream, the signal-bound context,
// flag checks, the crash hook of the tests) and the skeleton of the
// daemons themselves (base.go: replay state, audit, housekeeping, metrics
// endpoint, per-source limits; accept.go; group.go; conn.go).
package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
)

// NewLogger returns a logrus logger writing to w in format "text" or
// "json" at the given level name.
func NewLogger(w io.Writer, format, level string) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(w)
	switch format {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	l.SetLevel(lv)
	return l, nil
}

// OpenAudit opens the audit stream: path "-" is stderr, otherwise a file
// opened for append with mode 0600. The returned closer closes the file.
func OpenAudit(path, format string) (*audit.Log, io.Closer, error) {
	if format == "" {
		format = "text"
	}
	if format != "text" && format != "json" {
		return nil, nil, fmt.Errorf("audit format %q: want text or json", format)
	}
	var w io.Writer = os.Stderr
	var c io.Closer = io.NopCloser(nil)
	if path != "-" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("open audit log %s: %w", path, err)
		}
		w, c = f, f
	}
	return audit.New(audit.Config{Out: w, Format: format}), c, nil
}

// SignalContext is cancelled on SIGINT or SIGTERM.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
