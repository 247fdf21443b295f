package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
)

// ReopenFile is an append-only file that can be reopened by path, so that
// logrotate can move it away and the daemon continues in a new file.
type ReopenFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenReopenFile opens path for append, creating it with mode 0600.
func OpenReopenFile(path string) (*ReopenFile, error) {
	r := &ReopenFile{path: path}
	if err := r.Reopen(); err != nil {
		return nil, err
	}
	return r, nil
}

// Write writes p to the current file.
func (r *ReopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, os.ErrClosed
	}
	return r.f.Write(p)
}

// Reopen opens the path again and switches writes to it; on failure the
// old file stays in use.
func (r *ReopenFile) Reopen() error {
	// The lock is held from before the new file exists, so no write that
	// starts once it exists can still go to the old one.
	r.mu.Lock()
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		r.mu.Unlock()
		return fmt.Errorf("open audit log %s: %w", r.path, err)
	}
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close closes the file; later writes fail.
func (r *ReopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// OpenAuditFile opens the audit stream like OpenAudit and, until ctx ends
// or the closer is closed, handles SIGHUP: a file is reopened (after
// logrotate has moved it), and with "-" the signal is only logged. The
// closer stops the signal handler and closes the file.
func OpenAuditFile(ctx context.Context, path, format string, log logrus.FieldLogger) (*audit.Log, io.Closer, error) {
	if err := audit.CheckFormat(format); err != nil {
		return nil, nil, err
	}
	if format == "" {
		format = audit.FormatText
	}
	var w io.Writer = os.Stderr
	var rf *ReopenFile
	if path != "-" {
		var err error
		if rf, err = OpenReopenFile(path); err != nil {
			return nil, nil, err
		}
		w = rf
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if rf == nil {
				log.Info("SIGHUP: audit log is standard error; nothing to reopen")
				continue
			}
			if err := rf.Reopen(); err != nil {
				log.WithError(err).Error("SIGHUP: reopen audit log; still writing the old file")
				continue
			}
			log.WithField("path", path).Info("SIGHUP: audit log reopened")
		}
	}()
	closer := closerFunc(func() error {
		cancel()
		wg.Wait()
		if rf != nil {
			return rf.Close()
		}
		return nil
	})
	return audit.New(audit.Config{Out: w, Format: format}), closer, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
