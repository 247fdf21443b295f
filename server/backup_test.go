package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/statecheck"
)

// restoredNodes restores file into a new directory, opens it as a single
// server and returns its node names.
func restoredNodes(t *testing.T, file string) (string, map[string]bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(RestoreConfig{From: file, StateDir: dir, Log: quietLog()}, func(string) { t.Fatal("backed up an empty directory") }); err != nil {
		t.Fatal(err)
	}
	if m, err := store.LoadManifest(dir); err != nil || m == nil || !m.Restored {
		t.Fatalf("the restored directory is not marked restored: %+v %v", m, err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.closeUnstarted()
	res, err := s.handleAdmin(context.Background(), admin.OpListNode, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range res.([]admin.NodeInfo) {
		out[n.Name] = true
	}
	return dir, out
}

// TestBackupOfAGroupMember: a follower's backup, taken while the leader
// writes, restores into a single server holding every node created before
// it; the file is 0600, never replaced without force; restore refuses a
// directory with state unless forced, and then backs it up first.
func TestBackupOfAGroupMember(t *testing.T) {
	g := startInProcGroup(t, 3)
	for i := 0; i < 5; i++ {
		waitCall(t, g.dirs[0], admin.OpCreateNode, admin.CreateNodeArgs{Name: fmt.Sprintf("before%d", i), Mom: fmt.Sprintf("10.1.0.%d", i+1)}, nil)
	}
	// The follower has applied them once it reports them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rep admin.ServerReport
		if call(t, g.dirs[1], admin.OpPrintServer, nil, &rep) == nil && rep.Server.Nodes == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("s2 did not apply the creates")
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writes go on during the backup
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = call(t, g.dirs[0], admin.OpCreateNode, admin.CreateNodeArgs{Name: fmt.Sprintf("during%d", i), Mom: fmt.Sprintf("10.2.%d.%d", i/250, i%250+1)}, nil)
		}
	}()
	out := filepath.Join(t.TempDir(), "group.backup")
	b, err := Backup(context.Background(), BackupConfig{StateDir: g.dirs[1], Out: out})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if b.Member != "s2" || b.Index == 0 || b.Nodes < 5 || strings.Join(b.Members, ",") != "s1,s2,s3" {
		t.Fatalf("backup: member %q index %d nodes %d members %v", b.Member, b.Index, b.Nodes, b.Members)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi.Mode(), err)
	}
	if _, err := Backup(context.Background(), BackupConfig{StateDir: g.dirs[1], Out: out}); !errors.Is(err, ErrBackupExists) {
		t.Fatalf("second backup to the same file: %v", err)
	}
	if _, err := Backup(context.Background(), BackupConfig{StateDir: g.dirs[0], Out: out, Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*tmp*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	dir, nodes := restoredNodes(t, out)
	for i := 0; i < 5; i++ {
		if !nodes[fmt.Sprintf("before%d", i)] {
			t.Fatalf("before%d missing from the restored server: %v", i, nodes)
		}
	}
	if len(nodes) < b.Nodes {
		t.Fatalf("restored %d nodes, the first backup held %d", len(nodes), b.Nodes)
	}
	for _, f := range []string{raftDirName, groupCAFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Fatalf("the restored directory holds %s", f)
		}
	}

	// restore into a directory with state: refused, then forced.
	if _, err := Restore(RestoreConfig{From: out, StateDir: dir, Log: quietLog()}, func(string) {}); !errors.Is(err, ErrHasState) {
		t.Fatalf("restore over state: %v", err)
	}
	var moved string
	if _, err := Restore(RestoreConfig{From: out, StateDir: dir, Force: true, Log: quietLog()}, func(b string) { moved = b }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, identityFile)); err != nil {
		t.Fatalf("--force did not back up the identity: %v", err)
	}

	// A damaged backup is refused before anything is written.
	data, _ := os.ReadFile(out)
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte(strings.Replace(string(data), `"server_id":"`, `"server_id":"x`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if _, err := Restore(RestoreConfig{From: bad, StateDir: empty, Log: quietLog()}, func(string) {}); !errors.Is(err, admin.ErrBadBackup) {
		t.Fatalf("damaged backup: %v", err)
	}
	if _, err := os.Stat(empty); err == nil {
		t.Fatal("a refused restore made the directory")
	}
	wantCode(t, call(t, g.dirs[1], admin.OpBackup, map[string]any{"x": 1}, nil), admin.CodeBadRequest, "unknown field")
}

// TestBackupOfASingleServer: a single server answers backup too; its
// restore holds its nodes and identity.
func TestBackupOfASingleServer(t *testing.T) {
	s := startServer(t)
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n1", Mom: "127.3.0.1"})
	res := mustAdmin(t, s, admin.OpBackup, nil).(*admin.Backup)
	if res.Member != "" || res.Index != 0 || res.Nodes != 1 {
		t.Fatalf("backup: %+v", res)
	}
	// Read in chunks of 500 bytes: many calls, one file, the same
	// backup as the one answer.
	s.backups.mu.Lock()
	s.backups.chunk = 500
	s.backups.mu.Unlock()
	out := filepath.Join(t.TempDir(), "single.backup")
	if _, err := Backup(context.Background(), BackupConfig{StateDir: s.cfg.StateDir, Out: out}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() < 1500 {
		t.Fatalf("backup file: %v %v: not several chunks", fi, err)
	}
	dir, nodes := restoredNodes(t, out)
	if !nodes["n1"] || len(nodes) != 1 {
		t.Fatalf("restored nodes %v", nodes)
	}
	a, _ := os.ReadFile(filepath.Join(s.cfg.StateDir, identityFile))
	b, _ := os.ReadFile(filepath.Join(dir, identityFile))
	if string(a) != string(b) {
		t.Fatal("the restored identity differs")
	}
}

// TestRestoreKilledBeforeTheEnd: a restore killed after it wrote the
// state files but before it finished (kill -9 between its steps) must
// never leave a directory that a start takes as whole and current: from
// the first manifest on, the directory is marked restored, so a start on
// it recovers the replay marks with a floor instead of admitting PINGs
// captured since the backup. Found with strace injecting SIGKILL at the
// rename of each file of momgate-server restore: killed after the state
// journal was written, the directory checked "start: nothing lost".
func TestRestoreKilledBeforeTheEnd(t *testing.T) {
	out := oneNodeBackup(t)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := checkBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupState()
	if err := g.Restore(bytes.NewReader(b.Snapshot)); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	rc := RestoreConfig{From: out, StateDir: dir, Log: quietLog(), Now: time.Now}
	// Killed after the files and the manifest, before the journals.
	if err := restoreFiles(dir, b, g, rc, func(string) { t.Fatal("backed up an empty directory") }); err != nil {
		t.Fatal(err)
	}
	if m, err := store.LoadManifest(dir); err != nil || m == nil || !m.Restored {
		t.Fatalf("the first manifest of a restore is not marked restored: %+v %v", m, err)
	}
	// Killed after the journals: the directory is whole, and a start
	// must recover its replay marks.
	if err := g.materialize(dir, rc.Log); err != nil {
		t.Fatal(err)
	}
	st, err := daemon.CheckState(dir, statecheck.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	if recovered, _ := st.Verdict.Lines(); len(recovered) == 0 || !strings.Contains(strings.Join(recovered, "\n"), "restored") {
		t.Fatalf("a restore killed before its end checks as %v: a start would take its replay marks as current", recovered)
	}
}

// TestRestoreRefusesAManifestNotOfItsSnapshot: the node count and the
// members beside the snapshot are outside its SHA-256; a backup whose
// count or members are not its snapshot's is refused, instead of restore
// reporting "999999 nodes" for a snapshot of one.
func TestRestoreRefusesAManifestNotOfItsSnapshot(t *testing.T) {
	out := oneNodeBackup(t)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to string }{
		{`"nodes":1,`, `"nodes":999999,`},
		{`"nodes":1,`, `"nodes":-1,`},
		{`"members":[]`, `"members":["s1"]`},
	} {
		if !strings.Contains(string(data), c.from) {
			t.Fatalf("the backup does not hold %s", c.from)
		}
		bad := filepath.Join(t.TempDir(), "bad")
		if err := os.WriteFile(bad, []byte(strings.Replace(string(data), c.from, c.to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "restored")
		if _, err := Restore(RestoreConfig{From: bad, StateDir: dir, Log: quietLog()}, func(string) {}); !errors.Is(err, admin.ErrBadBackup) {
			t.Fatalf("%s: restore: %v", c.to, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%s: a refused restore made the directory", c.to)
		}
	}
}

// TestRestoreRefusesAnOversizedFile: restore reads at most the size of
// any backup: a larger file is refused from its size, a stream (a pipe,
// /dev/zero) once it passes the bound, instead of being read into
// memory until the process dies (restore --from /dev/zero did).
func TestRestoreRefusesAnOversizedFile(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.backup")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxChunkedBackup + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(RestoreConfig{From: big, StateDir: dir, Log: quietLog()}, func(string) {}); !errors.Is(err, admin.ErrBadBackup) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("restore of a file over the bound: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a refused restore made the directory")
	}
	// A stream has no size: the bound stops the read.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no fifo:", err)
	}
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.Write(make([]byte, 4096)) // fails once the reader is gone
	}()
	if _, err := readBackupFile(fifo, 100); !errors.Is(err, admin.ErrBadBackup) {
		t.Fatalf("a stream over the bound: %v", err)
	}
	if _, err := readBackupFile(t.TempDir(), 100); !errors.Is(err, admin.ErrBadBackup) {
		t.Fatalf("a directory: %v", err)
	}
}

// TestRestoreRefusesADirectoryAStartRefuses: a directory a start would
// refuse (here a file others can read) is refused before restore writes
// anything into it; it used to write the identity, the keys and the
// registry first and fail after, leaving them behind.
func TestRestoreRefusesADirectoryAStartRefuses(t *testing.T) {
	out := oneNodeBackup(t)
	dir := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "notes.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		_, err := Restore(RestoreConfig{From: out, StateDir: dir, Force: force, Log: quietLog()}, func(string) {})
		if !errors.Is(err, statefile.ErrInsecurePerm) {
			t.Fatalf("force=%v: restore into a directory with a file others can read: %v", force, err)
		}
		if found := stateFilesIn(dir); len(found) != 0 {
			t.Fatalf("force=%v: a refused restore wrote %v", force, found)
		}
	}
}

// TestRestoreRefusesASnapshotAStartRefuses: a backup whose snapshot
// decodes but that a start refuses (state.json of another format, no
// keyring, a keyring without an active key) is refused by restore, which
// wrote such a directory and said "restored" before; the server then
// refused to start on it.
func TestRestoreRefusesASnapshotAStartRefuses(t *testing.T) {
	out := oneNodeBackup(t)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	good, err := admin.DecodeBackup(data)
	if err != nil {
		t.Fatal(err)
	}
	secs, err := replica.ReadSections(bytes.NewReader(good.Snapshot))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func([]byte) []byte) []replica.Section {
		var out []replica.Section
		for _, s := range secs {
			if s.Name == name {
				if s.Data = f(s.Data); s.Data == nil {
					continue
				}
			}
			out = append(out, s)
		}
		return out
	}
	for what, edited := range map[string][]replica.Section{
		"format 2": edit(stateFile, func(d []byte) []byte {
			return bytes.Replace(d, []byte(`"format": 1`), []byte(`"format": 2`), 1)
		}),
		"no keyring":    edit(keyringFile, func([]byte) []byte { return nil }),
		"no active key": edit(keyringFile, func([]byte) []byte { return []byte(`{"format": 1, "keys": []}`) }),
	} {
		var buf bytes.Buffer
		if _, err := replica.WriteSections(&buf, edited); err != nil {
			t.Fatal(err)
		}
		b := *good
		b.Snapshot = buf.Bytes()
		b.Seal()
		enc, err := json.Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "bad")
		if err := os.WriteFile(bad, enc, 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "restored")
		if _, err := Restore(RestoreConfig{From: bad, StateDir: dir, Log: quietLog()}, func(string) {}); !errors.Is(err, admin.ErrBadBackup) {
			t.Errorf("%s: restore: %v", what, err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s: a refused restore made the directory", what)
		}
	}
}

// oneNodeBackup is the backup file of a running single server with one
// node, n1.
func oneNodeBackup(t *testing.T) string {
	t.Helper()
	s := startServer(t)
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n1", Mom: "127.3.0.1"})
	out := filepath.Join(t.TempDir(), "single.backup")
	if _, err := Backup(context.Background(), BackupConfig{StateDir: s.cfg.StateDir, Out: out}); err != nil {
		t.Fatal(err)
	}
	return out
}
