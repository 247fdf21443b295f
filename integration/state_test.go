package integration

// State you can trust (issue 16), on the real binaries: each state file
// damaged or removed while its daemon is stopped, then the daemon started
// again. It refuses to start (exit 1, naming the file, what was lost and
// the recovery, and changing nothing), or recovers fail-closed and loudly
// (an error-level "state loss" line and the counter
// momgate_state_recoveries_total), and a PING captured before the damage
// is still refused. docs/SECURITY.md section 7 is the specification.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
)

// fileSums returns the SHA-256 of every regular file under dir, by path
// relative to dir, except those named in skip.
func fileSums(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// requireSameFiles fails unless dir holds exactly the files of before,
// byte for byte.
func requireSameFiles(t *testing.T, what, dir string, before map[string]string, skip ...string) {
	t.Helper()
	after := fileSums(t, dir, skip...)
	for f, sum := range before {
		if after[f] != sum {
			t.Errorf("%s changed %s", what, f)
		}
	}
	for f := range after {
		if _, ok := before[f]; !ok {
			t.Errorf("%s created %s", what, f)
		}
	}
}

// wantRefused waits for p, started on a damaged directory, to exit 1 and
// checks that its output says which file, what was lost, the recovery and
// where the runbook is.
func wantRefused(t *testing.T, p *proc, file, doc string) string {
	t.Helper()
	if code := p.waitExit(t, 30*time.Second); code != 1 {
		t.Fatalf("%s exited %d on a directory that lost %s, want 1:\n%s", p.name, code, file, p.out.String())
	}
	out := p.out.String()
	for _, want := range []string{file, "lost:", "recovery:", doc} {
		if !strings.Contains(out, want) {
			t.Fatalf("%s's refusal does not say %q:\n%s", p.name, want, out)
		}
	}
	return out
}

// waitLogged waits until p's output holds s.
func waitLogged(t *testing.T, p *proc, s string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s to log %q", p.name, s), 30*time.Second, func() bool {
		return strings.Contains(p.out.String(), s)
	})
}

// wantCaptureRefused fails unless err is a Reject for a replay or for a
// PING not above the floor: a PING admitted before a loss of marks.
func wantCaptureRefused(t *testing.T, what string, err error) {
	t.Helper()
	if code := rejectCode(t, err); code != proto.RejectReplay && code != proto.RejectStale {
		t.Fatalf("%s: Reject code %s (%v), want replay or floor", what, code, err)
	}
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// markRecords is the number of whole records in a format 2 mark log.
func markRecords(t *testing.T, path string) int64 {
	t.Helper()
	n := (fileSize(t, path) - store.MarkHeaderSize) / store.MarkRecordSize
	if n < 1 {
		t.Fatalf("%s holds no record to damage", path)
	}
	return n
}

// recoveries scrapes a daemon's momgate_state_recoveries_total{step}.
func recoveries(t *testing.T, metricsAddr, step string) float64 {
	t.Helper()
	return scrapeMetrics(t, "http://"+metricsAddr+"/metrics")[fmt.Sprintf("momgate_state_recoveries_total{step=%q}", step)]
}

// TestStateLossMomMarks: a MOM's marks.log truncated to zero, cut at a
// record boundary and inside a record, zeroed at its tail, deleted, and
// its marks.snap deleted after a clean stop; and, for contrast, a kill -9
// with nothing damaged. Each damaged start recovers with the recovery
// floor, loudly; the PING of a's captured and admitted before the damage is
// refused after it; a's genuine PINGs (a first contact again) are admitted.
func TestStateLossMomMarks(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)
	metrics := fmt.Sprintf("127.0.0.3:%d", freePort(t, "127.0.0.3"))
	thief := stealKeys(t, a)
	logPath, snapPath := filepath.Join(b.dir, store.MarkLogName), filepath.Join(b.dir, store.MarkSnapName)
	kill := func(m *momProc) { m.kill() }
	stop := func(m *momProc) { m.stop() }
	cases := []struct {
		name   string
		stop   func(*momProc)
		damage func()
		file   string // "": nothing lost
	}{
		{"killed_no_damage", kill, func() {}, ""},
		{"log_truncated_to_zero", kill, func() { truncateFile(t, logPath, 0) }, store.MarkLogName},
		{"log_cut_at_record_boundary", kill, func() {
			truncateFile(t, logPath, store.MarkHeaderSize+(markRecords(t, logPath)-1)*store.MarkRecordSize)
		}, store.MarkLogName},
		{"log_cut_mid_record", kill, func() { truncateFile(t, logPath, fileSize(t, logPath)-10) }, store.MarkLogName},
		{"log_zeroed_tail", kill, func() {
			f, err := os.OpenFile(logPath, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n := markRecords(t, logPath)
			if _, err := f.WriteAt(make([]byte, store.MarkRecordSize), store.MarkHeaderSize+(n-1)*store.MarkRecordSize); err != nil {
				t.Fatal(err)
			}
		}, store.MarkLogName},
		{"log_deleted", kill, func() { removeFile(t, logPath) }, store.MarkLogName},
		{"snap_deleted_after_clean_stop", stop, func() { removeFile(t, snapPath) }, store.MarkSnapName},
		{"declared_restored", stop, func() {
			if r := run(t, "", "momgate-mom", "state", "restored", "--state-dir", b.dir); r.code != 0 || !strings.Contains(r.stdout, "marked restored") {
				t.Fatalf("state restored: exit %d %q %q", r.code, r.stdout, r.stderr)
			}
		}, store.MarkLogName},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp := thief.seal("127.0.0.2", "127.0.0.3")
			if err := thief.deliver("127.0.0.2", target, cp); err != nil {
				t.Fatalf("the capture, before the damage: %v", err)
			}
			tc.stop(b)
			tc.damage()
			// state check says what the start will do, and writes nothing.
			before := fileSums(t, b.dir)
			r := run(t, "", "momgate-mom", "state", "check", "--state-dir", b.dir)
			if want := map[bool]int{true: 0, false: 2}[tc.file == ""]; r.code != want || (tc.file != "" && !strings.Contains(r.stdout, "recover: "+tc.file)) {
				t.Fatalf("state check: exit %d, want %d: %q %q", r.code, want, r.stdout, r.stderr)
			}
			requireSameFiles(t, "state check", b.dir, before)
			b = c.startMomWith("b", "127.0.0.3", "", "--metrics-listen", metrics)
			c.waitUp("b")
			c.waitAdmin(b)
			if tc.file == "" {
				if strings.Contains(b.out.String(), "state loss") {
					t.Fatalf("a kill -9 lost state:\n%s", b.out.String())
				}
				wantReject(t, "the capture after a kill -9", thief.deliver("127.0.0.2", target, cp), proto.RejectReplay)
			} else {
				waitLogged(t, b.proc, "level=error msg=\"state loss: "+tc.file)
				if n := recoveries(t, metrics, "marks_floor"); n != 1 {
					t.Fatalf("momgate_state_recoveries_total{step=\"marks_floor\"} = %v, want 1", n)
				}
				wantCaptureRefused(t, "the capture after "+tc.name, thief.deliver("127.0.0.2", target, cp))
			}
			if pr, r := c.ping(a, target); !pr.Admitted {
				t.Fatalf("genuine a -> b after %s: %+v %s", tc.name, pr, r.stderr)
			}
		})
	}
	// The loss was recovered from once: a clean restart finds nothing lost
	// (the restored mark is cleared), and the recovery floor stays.
	b.stop()
	if r := run(t, "", "momgate-mom", "state", "check", "--state-dir", b.dir); r.code != 0 {
		t.Fatalf("state check after the recoveries: exit %d %q", r.code, r.stdout)
	}
}

// serverFiles copies the state files of a stopped server (not its lock,
// socket or audit log) into memory.
func serverFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case !e.Type().IsRegular(), n == "lock", n == "audit.log":
		default:
			data, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				t.Fatal(err)
			}
			out[n] = data
		}
	}
	return out
}

// restoreFiles writes files back into dir, each as it was.
// restoreAndRequireDeleted puts the server's files back as they were,
// starts it, and requires that the node name, deleted before, is still gone.
func (c *cluster) restoreAndRequireDeleted(t *testing.T, whole map[string][]byte, name string) {
	t.Helper()
	restoreFiles(t, c.srvDir, whole)
	c.startServer()
	c.waitUp("a")
	if _, ok := c.node(name); ok {
		t.Fatalf("the deleted node %s is back", name)
	}
}

// requireOnlyNode requires that the registry holds exactly the node name at
// address mom (after refused directives changed nothing).
func (c *cluster) requireOnlyNode(t *testing.T, name, mom string) {
	t.Helper()
	ns := c.nodes()
	if len(ns) != 1 || ns[0].Name != name || ns[0].Mom != mom {
		t.Fatalf("nodes after the refusals: %+v", ns)
	}
}

func restoreFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStateLossServerRegistry: the server's state.journal cut inside its
// last line, cut at a line boundary (its last line, the delete of node d,
// lost), emptied or deleted, and state.json deleted or replaced alone: the
// server refuses to start, names the file, what was lost and the
// recovery, and changes nothing. A delete lost this way would have brought
// d back with its still-valid token. The whole directory restored, it
// starts, without d.
func TestStateLossServerRegistry(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	c.addMom("a", "127.0.0.2")
	c.createNode("d", "127.0.0.5")
	c.mustQmgr("delete node d")
	c.server.stop()
	whole := serverFiles(t, c.srvDir)
	journal, snapshot := filepath.Join(c.srvDir, "state.journal"), filepath.Join(c.srvDir, "state.json")
	lastLine := func() int64 {
		data := whole["state.journal"]
		return int64(bytes.LastIndexByte(data[:len(data)-1], '\n') + 1)
	}
	cases := []struct {
		name, file string
		damage     func()
	}{
		{"journal_cut_in_a_line", "state.journal", func() { truncateFile(t, journal, int64(len(whole["state.journal"]))-5) }},
		{"journal_last_line_lost", "state.journal", func() { truncateFile(t, journal, lastLine()) }},
		{"journal_emptied", "state.journal", func() { truncateFile(t, journal, 0) }},
		{"journal_deleted", "state.journal", func() { removeFile(t, journal) }},
		{"snapshot_deleted", "state.json", func() { removeFile(t, snapshot) }},
		{"snapshot_replaced_alone", "state.json", func() {
			var v any
			if err := json.Unmarshal(whole["state.json"], &v); err != nil {
				t.Fatal(err)
			}
			other, _ := json.Marshal(v) // the same registry, another file: not the one the journal follows
			if err := os.WriteFile(snapshot, other, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			restoreFiles(t, c.srvDir, whole)
			tc.damage()
			before := fileSums(t, c.srvDir, "lock")
			if r := run(t, "", "momgate-server", "state", "check", "--state-dir", c.srvDir); r.code != 1 || !strings.Contains(r.stdout, "refuse: ") || !strings.Contains(r.stdout, tc.file) {
				t.Fatalf("state check: exit %d %q %q", r.code, r.stdout, r.stderr)
			}
			p := start(t, "server", "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr)
			out := wantRefused(t, p, tc.file, "docs/DEPLOYMENT.md section 7")
			if !strings.Contains(out, "Do not run `momgate-server init`") {
				t.Fatalf("the refusal does not warn against init:\n%s", out)
			}
			requireSameFiles(t, "a refused start", c.srvDir, before, "lock")
		})
	}
	c.restoreAndRequireDeleted(t, whole, "d")
}

// TestInitRefusesExistingIdentity: with state.json gone (the server then
// refuses to start, and says not to run init), init refuses the
// directory, names the identity and keyring it will not overwrite and
// changes nothing; --reinitialize backs them up first, byte for byte.
func TestInitRefusesExistingIdentity(t *testing.T) {
	c := newCluster(t)
	c.server.stop()
	removeFile(t, filepath.Join(c.srvDir, "state.json"))
	before := fileSums(t, c.srvDir, "lock")
	p := start(t, "server", "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr)
	wantRefused(t, p, "state.json", "docs/DEPLOYMENT.md section 7")
	r := run(t, "", "momgate-server", "init", "--state-dir", c.srvDir)
	if r.code == 0 || !strings.Contains(r.stderr, "identity.json") || !strings.Contains(r.stderr, "keyring.json") ||
		!strings.Contains(r.stderr, "never overwrites") || !strings.Contains(r.stderr, "--reinitialize") {
		t.Fatalf("init on a directory holding an identity: exit %d %q", r.code, r.stderr)
	}
	requireSameFiles(t, "a refused init", c.srvDir, before, "lock")
	r = run(t, "", "momgate-server", "init", "--reinitialize", "--state-dir", c.srvDir)
	if r.code != 0 || !strings.Contains(r.stdout, "backed up") || !strings.Contains(r.stdout, "new: enroll every node again") {
		t.Fatalf("init --reinitialize: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	backups, _ := filepath.Glob(filepath.Join(c.srvDir, "backup-*"))
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	for _, f := range []string{"identity.json", "keyring.json"} {
		if got := fileSums(t, backups[0])[f]; got != before[f] {
			t.Fatalf("backup of %s differs from the original", f)
		}
	}
	c.startServer()
}

// TestSecondInstanceTouchesNothing: a second server and a second MOM on
// live directories are refused, and change no byte of them (the live
// daemons are frozen with SIGSTOP meanwhile, so that their own writes do
// not mask one); the live MOM's mark log is not compacted under it: a
// PING it admitted just before is refused as a replay after a kill -9.
func TestSecondInstanceTouchesNothing(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	thief := stealKeys(t, a)
	target := b.imAddr(c.imPort)
	cp := thief.seal("127.0.0.2", "127.0.0.3")
	if err := thief.deliver("127.0.0.2", target, cp); err != nil {
		t.Fatalf("capture: %v", err)
	}
	second := map[string][]string{
		"server": {"momgate-server", "run", "--state-dir", c.srvDir, "--listen", "127.0.0.1:0"},
		"b":      {"momgate-mom", "run", "--state-dir", b.dir, "--server", c.srvAddr, "--listen", "127.0.0.3:0"},
	}
	live := map[string]*proc{"server": c.server, "b": b.proc}
	dirs := map[string]string{"server": c.srvDir, "b": b.dir}
	for _, name := range []string{"server", "b"} {
		t.Run(name, func(t *testing.T) {
			pid := live[name].cmd.Process.Pid
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			// The signal is asynchronous: checksum only once the process
			// is stopped, or a write of its own may land in between.
			waitFor(t, name+" stopped", 10*time.Second, func() bool { return procState(pid) == 'T' })
			before := fileSums(t, dirs[name])
			p := start(t, "second "+name, second[name]...)
			code := p.waitExit(t, 30*time.Second)
			requireSameFiles(t, "a refused second "+name, dirs[name], before)
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if code != 1 || !strings.Contains(p.out.String(), "in use by another process") ||
				!strings.Contains(p.out.String(), fmt.Sprintf("process %d", pid)) {
				t.Fatalf("second %s: exit %d:\n%s", name, code, p.out.String())
			}
		})
	}
	// A PING b admits while a second instance is refused keeps its mark.
	cp2 := thief.seal("127.0.0.2", "127.0.0.3")
	if err := thief.deliver("127.0.0.2", target, cp2); err != nil {
		t.Fatalf("second capture: %v", err)
	}
	if code := start(t, "second b", second["b"]...).waitExit(t, 30*time.Second); code != 1 {
		t.Fatalf("second b exited %d", code)
	}
	b.kill()
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	if strings.Contains(b.out.String(), "state loss") {
		t.Fatalf("b lost state:\n%s", b.out.String())
	}
	wantReject(t, "capture after the second instance and a kill -9", thief.deliver("127.0.0.2", target, cp2), proto.RejectReplay)
	wantReject(t, "older capture", thief.deliver("127.0.0.2", target, cp), proto.RejectReplay)
}

// procState is the state letter of process pid in /proc/PID/stat (R, S,
// T for stopped...), or 0 if it cannot be read.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}
