package daemon

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// TestAuditReopenOnSIGHUP: after logrotate moves the audit log and sends
// SIGHUP, new lines go to a new file at the same path.
func TestAuditReopenOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	log := logrus.New()
	log.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	alog, closer, err := OpenAuditFile(ctx, path, "text", log)
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("127.0.0.2:1")
	alog.Record(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Accepted, Peer: peer, Node: "before"})
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("audit file %v, %v; want mode 0600", st, err)
	}
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the audit log to be reopened", func() bool { _, err := os.Stat(path); return err == nil })
	alog.Record(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Accepted, Peer: peer, Node: "after"})
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before") || strings.Contains(string(old), "after") {
		t.Errorf("rotated file: %q", old)
	}
	if !strings.Contains(string(cur), "after") || strings.Contains(string(cur), "before") {
		t.Errorf("new file: %q", cur)
	}
}

func TestReopenFileClosed(t *testing.T) {
	r, err := OpenReopenFile(filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

func TestOpenAuditFileErrors(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	if _, _, err := OpenAuditFile(context.Background(), "-", "xml", log); err == nil {
		t.Error("bad format accepted")
	}
	if _, _, err := OpenAuditFile(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir"), "text", log); err == nil {
		t.Error("unopenable path accepted")
	}
}
