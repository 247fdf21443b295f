package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
)

func report(mode string, n int, f func(*admin.NodeInfo)) []byte {
	rep := admin.ServerReport{Server: admin.ServerInfo{Mode: mode}}
	for i := 1; i <= n; i++ {
		ni := admin.NodeInfo{Name: fmt.Sprintf("n%d", i), Mom: fmt.Sprintf("127.0.0.%d", i+1), Port: 15003, State: admin.NodeUp, Protocol: "v1", Versions: "v1"}
		if f != nil {
			f(&ni)
		}
		rep.Nodes = append(rep.Nodes, ni)
	}
	b, _ := json.Marshal(rep)
	return b
}

func TestReadView(t *testing.T) {
	v, err := ReadView(bytes.NewReader(report("compat", 2, func(n *admin.NodeInfo) {
		if n.Name == "n2" {
			n.State, n.Protocol, n.Versions, n.Upgraded = admin.NodeDown, "v2", "v2", true
		}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if v.Mode != proto.ModeCompat || len(v.Nodes) != 2 {
		t.Fatalf("view %+v", v)
	}
	n2 := v.Nodes[1]
	if n2.Up || !n2.Upgraded || n2.Versions != proto.VersionBitV2 || n2.IMAddr != "127.0.0.3:15003" {
		t.Fatalf("n2 %+v", n2)
	}
	for name, in := range map[string]string{"not json": "Qmgr: oops", "bad mode": `{"server":{"mode":"fast"},"nodes":[]}`,
		"bad addr": `{"server":{"mode":"ping"},"nodes":[{"name":"a","mom":"x","port":1}]}`} {
		if _, err := ReadView(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustView(t *testing.T, b []byte) migration.ClusterView {
	t.Helper()
	v, err := ReadView(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPlanResumeAndRollback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	opt := migration.Options{BatchSize: 2, VerifyPeers: 1}
	legacy := mustView(t, report("legacy", 3, nil))
	var out bytes.Buffer
	if err := Plan(legacy, PlanArgs{State: path, DryRun: true, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) || !strings.Contains(out.String(), "step 4/11: batch 1/2: restart n1,n2 with --protocol ping") {
		t.Fatalf("dry run wrote %s or printed:\n%s", path, out.String())
	}
	if err := Plan(legacy, PlanArgs{State: path, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := Begin(path); err != nil {
			t.Fatal(err)
		}
		if err := Record(path, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	_ = Record(path, false, "restart of n1 failed")
	out.Reset()
	if err := Plan(legacy, PlanArgs{State: path, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "resuming the migrate") || !strings.Contains(out.String(), "step 4/11") || !strings.Contains(out.String(), "restart of n1 failed") {
		t.Fatalf("resume printed %q", out.String())
	}
	// --rollback turns it into a rollback; a plain run then refuses to start a migration.
	compat := mustView(t, report("compat", 3, nil))
	if err := Plan(compat, PlanArgs{State: path, Rollback: true, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	if err := Plan(legacy, PlanArgs{State: path, Options: opt}, &out); err == nil || !strings.Contains(err.Error(), "rollback is in progress") {
		t.Fatalf("migrate during rollback: %v", err)
	}
	var st bytes.Buffer
	if err := Status(path, &st); err != nil || !strings.HasPrefix(st.String(), "rollback: step 1/") {
		t.Fatalf("status %q %v", st.String(), err)
	}
	// A corrupt state file is reported, not overwritten.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Plan(legacy, PlanArgs{State: path, Options: opt}, &out); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("corrupt state: %v", err)
	}
}

func TestCheck(t *testing.T) {
	v := mustView(t, report("compat", 2, func(n *admin.NodeInfo) {
		if n.Name == "n1" {
			n.Protocol, n.Versions = "v2", "v1,v2"
		}
	}))
	var out bytes.Buffer
	if err := Check(v, "compat", migration.GoalMigrate, []string{"n1"}, &out); err != nil {
		t.Fatalf("n1 compat: %v %s", err, out.String())
	}
	if err := Check(v, "compat", migration.GoalMigrate, nil, &out); !errors.Is(err, ErrUnmet) || !strings.Contains(out.String(), "n2: speaks v1") {
		t.Fatalf("n2 not compat: %v %q", err, out.String())
	}
	if err := Check(v, "preflight", migration.GoalMigrate, nil, &out); err != nil {
		t.Fatal(err)
	}
	if err := Check(v, "sideways", migration.GoalMigrate, nil, &out); err == nil || errors.Is(err, ErrUnmet) {
		t.Fatalf("unknown condition: %v", err)
	}
}

// TestNextIsSafeToEval: whatever a failure message contains, eval of the
// assignments sets the variable to exactly that text and runs nothing.
func TestNextIsSafeToEval(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	v := mustView(t, report("legacy", 2, nil))
	if err := Plan(v, PlanArgs{State: path, Options: migration.Options{BatchSize: 1, VerifyPeers: 1}}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	evil := `it's $(touch ` + dir + `/pwned) "and" ` + "`touch " + dir + "/pwned2`\nsecond line"
	if err := Record(path, false, evil); err != nil {
		t.Fatal(err)
	}
	var next bytes.Buffer
	if err := Next(path, &next); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-c", `set -eu; eval "$(cat)"; printf '%s|%s|%s' "$action" "$attempts" "$last_error"`)
	cmd.Stdin = &next
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, next.String())
	}
	if want := "preflight|1|" + evil; string(got) != want {
		t.Fatalf("eval gave %q, want %q", got, want)
	}
	for _, f := range []string{"pwned", "pwned2"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Fatalf("eval ran a command from the failure message (%s)", f)
		}
	}
}

// TestDryRunOnMigratedAndNeverEnrolled: the dry run of a cluster already
// in ping mode plans no mode change, and a node never enrolled is left
// out (named), not restarted.
func TestDryRunOnMigratedAndNeverEnrolled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	opt := migration.Options{BatchSize: 5, VerifyPeers: 1}
	v := mustView(t, report("ping", 3, func(n *admin.NodeInfo) {
		n.Protocol, n.Versions, n.Upgraded, n.Fingerprint = "v2", "v2", true, "SHA256:x"
		if n.Name == "n3" {
			n.State, n.Protocol, n.Versions, n.Upgraded, n.Fingerprint = admin.NodeEnrolling, "", "", false, ""
		}
	}))
	var out bytes.Buffer
	if err := Plan(v, PlanArgs{State: path, DryRun: true, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Contains(got, "mode=compat") || strings.Contains(got, "--protocol ping") || !strings.Contains(got, "left out, never enrolled: n3") {
		t.Fatalf("dry run of a migrated cluster:\n%s", got)
	}

	// One enrolled node not yet upgraded: restarted, the server stays in ping.
	v = mustView(t, report("ping", 2, func(n *admin.NodeInfo) {
		n.Protocol, n.Versions, n.Upgraded, n.Fingerprint = "v2", "v2", n.Name == "n1", "SHA256:x"
	}))
	out.Reset()
	if err := Plan(v, PlanArgs{State: path, DryRun: true, Options: opt}, &out); err != nil {
		t.Fatal(err)
	}
	got = out.String()
	if strings.Contains(got, "mode=compat") || strings.Contains(got, "set server mode") || !strings.Contains(got, "restart n2 with --protocol ping") {
		t.Fatalf("dry run with one node to upgrade in ping mode:\n%s", got)
	}
}
