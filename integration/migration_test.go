package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// fleet is a cluster whose MOMs can be restarted by the migration script's
// restart hook: the hook writes NODE.next (the --protocol to restart with)
// and kills the MOM; the test, which owns every process, starts the new one
// and writes NODE.pid, which the hook waits for.
type fleet struct {
	*cluster
	hookDir string
	ips     map[string]string
	procs   map[string]*momProc
}

const restartHook = `#!/bin/sh
# restart NODE PROTOCOL: ask the test to restart NODE's MOM with --protocol PROTOCOL.
set -eu
d=%q
node=$1
old=$(cat "$d/$node.pid")
printf '%%s\n' "$2" > "$d/$node.next.tmp"
mv "$d/$node.next.tmp" "$d/$node.next"
kill "$old"
i=0
while [ "$(cat "$d/$node.pid")" = "$old" ]; do
  i=$((i + 1))
  if [ $i -gt 600 ]; then echo "MOM $node did not come back" >&2; exit 1; fi
  sleep 0.05
done
`

func newFleet(t *testing.T, n int) *fleet {
	t.Helper()
	fastRaceExit(t)
	var ips []string
	for i := 1; i <= n; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", 30+i))
	}
	f := &fleet{cluster: newCluster(t, ips...), ips: map[string]string{}, procs: map[string]*momProc{}}
	f.hookDir = filepath.Join(f.dir, "hook")
	if err := os.MkdirAll(f.hookDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.hookDir, "restart.sh"), []byte(fmt.Sprintf(restartHook, f.hookDir)), 0o700); err != nil {
		t.Fatal(err)
	}
	if r := f.qmgr("set server mode=legacy"); r.code != 0 {
		t.Fatalf("set mode legacy: %s", r.stderr)
	}
	for i, ip := range ips {
		name := fmt.Sprintf("n%02d", i+1)
		f.ips[name] = ip
		f.startMOM(name, f.createNode(name, ip), "follow")
	}
	return f
}

// fastRaceExit stops race-built binaries sleeping a second at exit (the
// race runtime's default atexit_sleep_ms), which would make each of the
// hundreds of CLI calls of a migration cost a second.
// TestMain sets it for every test; this stays as documentation of the
// dependency.
func fastRaceExit(t *testing.T) {
	if os.Getenv("GORACE") == "" {
		t.Setenv("GORACE", "atexit_sleep_ms=0")
	}
}

// startMOM starts NAME's MOM (token may be "") and records its pid.
func (f *fleet) startMOM(name, token, protocol string) {
	f.t.Helper()
	dir := filepath.Join(f.dir, name)
	args := []string{"momgate-mom", "run", "--state-dir", dir, "--server", f.srvAddr, "--listen", fmt.Sprintf("%s:%d", f.ips[name], f.imPort),
		"--heartbeat", "200ms", "--log-level", "debug", "--protocol", protocol}
	if token != "" {
		args = append(args, "--enroll", token)
	}
	m := &momProc{name: name, ip: f.ips[name], dir: dir, proc: start(f.t, name, args...)}
	f.procs[name] = m
	f.moms[name] = m
	tmp := filepath.Join(f.hookDir, name+".pid.tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprint(m.cmd.Process.Pid)), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.hookDir, name+".pid")); err != nil {
		f.t.Fatal(err)
	}
}

// serveRestarts restarts the MOMs the hook asked for: NODE.next present
// and the old process gone.
func (f *fleet) serveRestarts() {
	f.t.Helper()
	for name, m := range f.procs {
		next := filepath.Join(f.hookDir, name+".next")
		b, err := os.ReadFile(next)
		if err != nil || !m.exited() {
			continue
		}
		if err := os.Remove(next); err != nil {
			f.t.Fatal(err)
		}
		f.startMOM(name, "", strings.TrimSpace(string(b)))
	}
}

// migrate runs migration/rolling-migrate.sh with args, serving restarts
// while it runs, and returns its output and exit code.
func (f *fleet) migrate(args ...string) (string, int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := f.scriptCmd(ctx, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				f.t.Fatalf("rolling-migrate.sh: %v", err)
			}
			f.t.Logf("rolling-migrate.sh %s (exit %d):\n%s", strings.Join(args, " "), code, out.String())
			return out.String(), code
		case <-tick.C:
			f.serveRestarts()
		}
	}
}

// scriptCmd is the rolling-migrate.sh command for this fleet, with args.
func (f *fleet) scriptCmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--state-dir", f.srvDir, "--state", filepath.Join(f.dir, "migration.json"), "--bin-dir", binDir,
		"--restart-cmd", filepath.Join(f.hookDir, "restart.sh") + " {node} {protocol}",
		"--mom-state-dir", filepath.Join(f.dir, "{node}"), "--timeout", "60", "--verify-peers", "1"}, args...)
	return exec.CommandContext(ctx, "bash", append([]string{"../migration/rolling-migrate.sh"}, full...)...)
}

func (f *fleet) report() admin.ServerReport {
	f.t.Helper()
	r := f.qmgr("--json", "-c", "print server")
	if r.code != 0 {
		f.t.Fatalf("print server: %s", r.stderr)
	}
	var rep admin.ServerReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		f.t.Fatalf("print server --json: %v", err)
	}
	return rep
}

// allNodes reports whether every node satisfies ok.
func (f *fleet) allNodes(ok func(admin.NodeInfo) bool) bool {
	rep := f.report()
	for _, n := range rep.Nodes {
		if !ok(n) {
			return false
		}
	}
	return len(rep.Nodes) > 0
}

func (f *fleet) jobs(name string) []admin.JobInfo {
	f.t.Helper()
	r := run(f.t, "", "momgate-mom", "job", "list", "--json", "--state-dir", filepath.Join(f.dir, name))
	if r.code != 0 {
		f.t.Fatalf("job list on %s: %s", name, r.stderr)
	}
	var js []admin.JobInfo
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		f.t.Fatalf("job list --json: %v in %q", err, r.stdout)
	}
	return js
}

var migJobs = map[string][]string{"n01": {"n02", "n03"}, "n04": {"n05", "n06"}, "n07": {"n08", "n09", "n10"}, "n10": {"n01", "n04"}}

// pollsOK returns the polls that succeeded per job/sister.
func (f *fleet) pollsOK() map[string]uint64 {
	out := map[string]uint64{}
	for ms := range migJobs {
		for _, j := range f.jobs(ms) {
			for _, s := range j.Sisters {
				out[j.Name+"/"+s.Name] = s.PollsOK
			}
		}
	}
	return out
}

// waitProgress waits until every sister of every job answered n more polls.
func (f *fleet) waitProgress(what string, n uint64) {
	f.t.Helper()
	streams := 0
	for _, s := range migJobs {
		streams += len(s)
	}
	base := f.pollsOK()
	waitFor(f.t, what, 30*time.Second, func() bool {
		now := f.pollsOK()
		for k, v := range base {
			if now[k] < v+n {
				return false
			}
		}
		return len(now) == streams
	})
}

// disruptions sums the jobs' counters and fails on any disruption.
func (f *fleet) checkNoDisruption(when string) (ok, failed, readmit uint64) {
	f.t.Helper()
	for ms := range migJobs {
		for _, j := range f.jobs(ms) {
			ok, failed, readmit = ok+j.PollsOK, failed+j.PollsFailed, readmit+j.Readmissions
			for _, s := range j.Sisters {
				if s.Disruptions != 0 {
					f.t.Errorf("%s: job %s sister %s: %d disruptions (last error %s)", when, j.Name, s.Name, s.Disruptions, s.LastError)
				}
			}
		}
	}
	f.t.Logf("%s: jobs polls ok %d, failed %d, re-admissions %d, disruptions 0", when, ok, failed, readmit)
	return ok, failed, readmit
}

// rawV1Poll sends a v1 IMPoll to target from local, as a legacy MOM would,
// and returns the answer.
func rawV1Poll(t *testing.T, local, target string) proto.Message {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := proto.WriteFrame(c, &proto.IMPoll{Ver: proto.V1, Job: "probe", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	frame, err := proto.ReadFrame(c, nil)
	if err != nil {
		t.Fatalf("raw v1 poll %s -> %s: %v", local, target, err)
	}
	m, err := proto.Unmarshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLiveMigrationWithJobs: ten MOMs start on the legacy protocol with jobs
// polling every 100 ms; rolling-migrate.sh takes them to compat and
// upgrades a first batch, pauses; a downgrade attempt from an upgraded
// node's address is refused; the script rolls back to legacy; then it
// migrates all the way to ping. No job is disrupted at any point, and
// nothing is pushed once the server is in ping mode.
func TestLiveMigrationWithJobs(t *testing.T) {
	f := newFleet(t, 10)
	waitFor(t, "every MOM up speaking v1", 30*time.Second, func() bool {
		return f.allNodes(func(n admin.NodeInfo) bool { return n.State == admin.NodeUp && n.Protocol == "v1" })
	})
	for ms, sisters := range migJobs {
		if r := run(t, "", "momgate-mom", "job", "start", "--state-dir", filepath.Join(f.dir, ms), "--name", "job-"+ms,
			"--sisters", strings.Join(sisters, ","), "--interval", "100ms"); r.code != 0 {
			t.Fatalf("job start on %s: %s", ms, r.stderr)
		}
	}
	f.waitProgress("jobs polling on the legacy protocol", 5)
	if st := f.report().Server.Legacy; st == nil || st.PushMessages == 0 || st.V1Sessions != 10 {
		t.Fatalf("legacy mode: %+v", st)
	}

	// Compat and a first batch of 4, then pause.
	out, code := f.migrate("--batch", "4", "--max-batches", "1")
	if code != 0 || !strings.Contains(out, "paused after 1 batch") {
		t.Fatalf("first run: exit %d", code)
	}
	rep := f.report()
	if rep.Server.Mode != "compat" {
		t.Fatalf("mode %s after the first batch, want compat", rep.Server.Mode)
	}
	for _, n := range rep.Nodes {
		first := n.Name <= "n04"
		if n.Upgraded != first || (first && n.Versions != "v2") || (!first && n.Versions != "v1,v2") {
			t.Fatalf("after batch 1: node %+v", n)
		}
	}
	f.waitProgress("jobs polling in compat with one batch upgraded", 3)

	// A downgrade: v1 from upgraded n01's address to n05 (a compat MOM that
	// would admit a listed address) is refused; from n06 (not upgraded) the
	// same v1 poll is admitted by the list.
	target := fmt.Sprintf("%s:%d", f.ips["n05"], f.imPort)
	n05 := f.procs["n05"]
	fromN01 := func() []peer { // n05's rows for n01 (no job of n01 polls n05)
		var rows []peer
		for _, p := range f.peers(n05) {
			if strings.HasPrefix(p.Addr, f.ips["n01"]+":") {
				rows = append(rows, p)
			}
		}
		return rows
	}
	rowsBefore, mark := fromN01(), auditMark(t, n05.auditPath())
	rj, ok := rawV1Poll(t, f.ips["n01"], target).(*proto.Reject)
	if !ok || rj.Code != proto.RejectLegacyRefused || !strings.Contains(rj.Reason, "downgrade") {
		t.Fatalf("v1 from upgraded n01: %+v, want a downgrade refusal", rj)
	}
	waitAudit(t, n05.auditPath(), mark, "downgrade", f.ips["n01"], "downgrade")
	if rows := fromN01(); !reflect.DeepEqual(rows, rowsBefore) {
		t.Fatalf("n05 admitted the downgrade: rows for n01 before %+v, after %+v", rowsBefore, rows)
	}
	if rp, ok := rawV1Poll(t, f.ips["n06"], target).(*proto.IMReply); !ok || rp.Ver != proto.V1 || rp.Status != proto.IMUnknownJob {
		t.Fatalf("v1 from listed n06: %+v, want an IMReply (admitted by the list)", rp)
	}
	if st := f.status(f.procs["n05"]); st.Audit.Rejected["downgrade"] < 1 {
		t.Fatalf("n05 did not count the downgrade: %+v", st.Audit.Rejected)
	}

	// Roll back from compat to legacy with the jobs running.
	out, code = f.migrate("--rollback")
	if code != 0 || !strings.Contains(out, "rollback complete") {
		t.Fatalf("rollback: exit %d", code)
	}
	if rep := f.report(); rep.Server.Mode != "legacy" {
		t.Fatalf("mode %s after rollback", rep.Server.Mode)
	}
	if !f.allNodes(func(n admin.NodeInfo) bool { return n.Protocol == "v1" && !n.Upgraded }) {
		t.Fatalf("after rollback: %+v", f.report().Nodes)
	}
	f.waitProgress("jobs polling after the rollback", 3)
	f.checkNoDisruption("after rollback")

	// All the way to ping.
	out, code = f.migrate("--batch", "4")
	if code != 0 || !strings.Contains(out, "migration complete") {
		t.Fatalf("migration: exit %d", code)
	}
	rep = f.report()
	if rep.Server.Mode != "ping" || !f.allNodes(func(n admin.NodeInfo) bool { return n.Upgraded && n.Versions == "v2" && n.State == admin.NodeUp }) {
		t.Fatalf("after migration: mode %s nodes %+v", rep.Server.Mode, rep.Nodes)
	}
	f.waitProgress("jobs polling on PING only", 5)
	for ms := range migJobs {
		for _, j := range f.jobs(ms) {
			for _, s := range j.Sisters {
				if s.Protocol != "v2" {
					t.Errorf("after migration: job %s polls %s over %q, want v2 (PING-admitted)", j.Name, s.Name, s.Protocol)
				}
			}
		}
	}
	ok1, failed, readmit := f.checkNoDisruption("after migration")
	if readmit == 0 || ok1 == 0 {
		t.Fatalf("jobs did not re-admit their restarted sisters (ok %d, failed %d, readmitted %d)", ok1, failed, readmit)
	}

	// No pushes after finalizing, even on membership changes.
	before := *rep.Server.Legacy
	if before.ListSessions != 0 || before.V1Sessions != 0 {
		t.Fatalf("ping mode still has list sessions: %+v", before)
	}
	if r := f.qmgr("create node n99 Mom=127.0.0.99"); r.code != 0 {
		t.Fatalf("create n99: %s", r.stderr)
	}
	if r := f.qmgr("delete node n99"); r.code != 0 {
		t.Fatalf("delete n99: %s", r.stderr)
	}
	f.waitProgress("jobs polling after the membership change", 2)
	after := *f.report().Server.Legacy
	if after.PushMessages != before.PushMessages || after.PushBytes != before.PushBytes || after.UpgradeMessages != before.UpgradeMessages {
		t.Fatalf("pushes after finalizing: before %+v, after %+v", before, after)
	}
	t.Logf("server counters at the end: %d list pushes (%d bytes), %d upgraded-set messages, %d mode messages",
		after.PushMessages, after.PushBytes, after.UpgradeMessages, after.ModeMessages)

	// A re-run of the finished migration changes nothing.
	out, code = f.migrate("--batch", "4")
	if code != 0 || !strings.Contains(out, "migration complete") || strings.Contains(out, "restart n") {
		t.Fatalf("re-run: exit %d", code)
	}
}

// TestMigrationScriptFailsCleanly: bad arguments exit 2 with a message; a
// node that cannot enroll stops the migration in compat mode, non-zero,
// naming the node; a dry run changes nothing.
func TestMigrationScriptFailsCleanly(t *testing.T) {
	fastRaceExit(t)
	c := newCluster(t, "127.0.0.51", "127.0.0.52")
	if r := c.qmgr("set server mode=legacy"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	c.startMom("a", "127.0.0.51", c.createNode("a", "127.0.0.51"))
	c.createNode("b", "127.0.0.52")
	// b's MOM runs legacy-only without a token: it can never speak PING.
	dirB := filepath.Join(c.dir, "b")
	start(t, "b", "momgate-mom", "run", "--state-dir", dirB, "--server", c.srvAddr, "--listen", fmt.Sprintf("127.0.0.52:%d", c.imPort),
		"--protocol", "legacy", "--log-level", "debug")
	waitFor(t, "both up", 30*time.Second, func() bool {
		ns := c.nodes()
		return len(ns) == 2 && ns[0].State == "up" && ns[1].State == "up"
	})
	script := func(args ...string) (string, int) {
		cmd := exec.Command("bash", append([]string{"../migration/rolling-migrate.sh", "--bin-dir", binDir}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}
	state := filepath.Join(c.dir, "mig.json")
	if out, code := script("--batch", "0", "--state-dir", c.srvDir); code != 2 || !strings.Contains(out, "--batch must be a positive integer") {
		t.Fatalf("--batch 0: exit %d: %s", code, out)
	}
	if out, code := script("--state-dir", c.srvDir, "--state", state); code != 2 || !strings.Contains(out, "--restart-cmd is required") {
		t.Fatalf("no restart command: exit %d: %s", code, out)
	}
	out, code := script("--state-dir", c.srvDir, "--state", state, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "restart a,b with --protocol ping") {
		t.Fatalf("dry run: exit %d: %s", code, out)
	}
	if _, err := os.Stat(state); err == nil {
		t.Fatal("dry run wrote the state file")
	}
	out, code = script("--state-dir", c.srvDir, "--state", state, "--restart-cmd", "true", "--timeout", "3")
	if code != 1 || !strings.Contains(out, "b: speaks v1 to the server") || !strings.Contains(out, "--enroll TOKEN") ||
		!strings.Contains(out, "cluster is in compat mode") {
		t.Fatalf("unenrollable node: exit %d: %s", code, out)
	}
	t.Logf("failed run (exit %d):\n%s", code, out)
	if n, ok := c.node("a"); !ok || n.State != "up" {
		t.Fatalf("a after the failed run: %+v", n)
	}
	// The cluster stays in compat with a compat MOM (a) and a legacy-only
	// one (b): they still talk. a tries PING, b refuses it as legacy-only,
	// a falls back to v1 and b admits it by the list; b's v1 is admitted by
	// a's list.
	for _, j := range []struct{ ms, sister string }{{"a", "b"}, {"b", "a"}} {
		if r := run(t, "", "momgate-mom", "job", "start", "--state-dir", filepath.Join(c.dir, j.ms), "--name", "j-"+j.ms, "--sisters", j.sister); r.code != 0 {
			t.Fatalf("job start on %s: %s", j.ms, r.stderr)
		}
	}
	waitFor(t, "both jobs polling over v1", 30*time.Second, func() bool {
		for _, ms := range []string{"a", "b"} {
			r := run(t, "", "momgate-mom", "job", "list", "--json", "--state-dir", filepath.Join(c.dir, ms))
			var js []admin.JobInfo
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &js) != nil || len(js) != 1 {
				return false
			}
			if s := js[0].Sisters[0]; s.PollsOK < 3 || s.Protocol != "v1" {
				return false
			}
		}
		return true
	})
	pr, _ := c.ping(c.moms["a"], fmt.Sprintf("127.0.0.52:%d", c.imPort))
	if pr.Admitted || pr.Reason != "refused_by_peer" || !strings.Contains(pr.Error, "legacy protocol only") {
		t.Fatalf("PING to the legacy-only MOM: %+v", pr)
	}

	// The state remembers the failed step; a re-run retries it.
	out, code = script("--state-dir", c.srvDir, "--state", state, "--restart-cmd", "true", "--timeout", "1")
	if code != 1 || !strings.Contains(out, "resuming the migrate") || !strings.Contains(out, "retry") {
		t.Fatalf("re-run: exit %d: %s", code, out)
	}
}
