// Package migrate is the I/O shell of momgate-migrate, the helper of
// migration/rolling-migrate.sh: it reads the cluster view from
// `momgate-qmgr --json -c "print server"`, keeps the plan of package
// migration in a state file, and prints what the script does next in a
// form the shell can eval. The decisions are all in package migration.
package migrate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
)

// ErrUnmet means a checked condition does not hold (yet).
var ErrUnmet = errors.New("condition not met")

// maxInput bounds the JSON read from momgate-qmgr and the state file.
const maxInput = 64 << 20

// ReadView decodes the output of `momgate-qmgr --json -c "print server"`.
func ReadView(r io.Reader) (migration.ClusterView, error) {
	var rep admin.ServerReport
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return migration.ClusterView{}, fmt.Errorf("read server report: %w", err)
	}
	if len(b) > maxInput {
		return migration.ClusterView{}, fmt.Errorf("server report over %d bytes", maxInput)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return migration.ClusterView{}, fmt.Errorf("server report is not print server JSON: %w", err)
	}
	mode, err := proto.ParseMode(rep.Server.Mode)
	if err != nil {
		return migration.ClusterView{}, fmt.Errorf("server report: %w", err)
	}
	v := migration.ClusterView{Mode: mode}
	for _, n := range rep.Nodes {
		a, err := netip.ParseAddr(n.Mom)
		if err != nil || n.Port < 1 || n.Port > 65535 {
			return migration.ClusterView{}, fmt.Errorf("server report: node %s address %q port %d", n.Name, n.Mom, n.Port)
		}
		v.Nodes = append(v.Nodes, migration.NodeView{
			Name: n.Name, IMAddr: netip.AddrPortFrom(a, uint16(n.Port)).String(), Up: n.State == admin.NodeUp,
			Protocol: n.Protocol, Versions: migration.ParseVersions(n.Versions), Upgraded: n.Upgraded,
			NeverEnrolled: n.State == admin.NodeEnrolling, NoKey: n.Fingerprint == "",
		})
	}
	return v, nil
}

// LoadState reads a state file; it returns nil, nil if there is none.
func LoadState(path string) (*migration.State, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if fi.Size() > maxInput {
		return nil, fmt.Errorf("state file %s: %d bytes, limit %d", path, fi.Size(), maxInput)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	s, err := migration.DecodeState(b)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w (move it away to plan afresh)", path, err)
	}
	return s, nil
}

// SaveState writes the state file atomically.
func SaveState(path string, s *migration.State) error {
	if err := statefile.WriteAtomic(path, migration.EncodeState(s), 0o600); err != nil {
		return fmt.Errorf("save state file %s: %w", path, err)
	}
	return nil
}

// PlanArgs are the arguments of Plan.
type PlanArgs struct {
	State    string // state file
	Rollback bool
	DryRun   bool
	Options  migration.Options
}

// Plan makes or resumes a plan from the cluster view and saves it (unless
// dry run), printing what it will do to out. A state file from an earlier
// run is resumed: an unfinished migration goes on, --rollback turns it into
// a rollback, a finished plan is replaced by a new one.
func Plan(view migration.ClusterView, a PlanArgs, out io.Writer) error {
	goal := migration.GoalMigrate
	if a.Rollback {
		goal = migration.GoalRollback
	}
	s, err := LoadState(a.State)
	if err != nil {
		return err
	}
	resumed := false
	switch {
	case s == nil || s.Finished():
		if s, err = migration.NewPlan(goal, view, a.Options); err != nil {
			return err
		}
	case s.Goal == goal:
		resumed = true
	case goal == migration.GoalRollback:
		s.StartRollback(view)
	default:
		return fmt.Errorf("a rollback is in progress (state file %s): finish it with --rollback first", a.State)
	}
	if resumed {
		fmt.Fprintf(out, "resuming the %s in %s at step %d/%d", s.Goal, a.State, s.Pos+1, len(s.Steps))
		if s.LastError != "" {
			fmt.Fprintf(out, " (last attempt failed: %s)", s.LastError)
		}
		fmt.Fprintln(out)
	} else {
		fmt.Fprintf(out, "planned a %s of %d nodes from mode %s: %d steps", s.Goal, len(s.Nodes), view.Mode, len(s.Steps))
		if s.Goal == migration.GoalMigrate {
			fmt.Fprintf(out, ", %d batches", len(s.Batches))
		}
		fmt.Fprintln(out)
		if skipped := view.NeverEnrolled(); len(skipped) > 0 {
			fmt.Fprintf(out, "left out, never enrolled: %s (no MOM to restart; each joins in the server's mode when it enrolls)\n",
				strings.Join(skipped, ","))
		}
	}
	if a.DryRun {
		fmt.Fprintln(out, "dry run: nothing is changed; the steps would be:")
		for _, act := range s.Simulate() {
			fmt.Fprintf(out, "  %s\n", describe(act))
		}
		return nil
	}
	return SaveState(a.State, s)
}

func describe(a migration.Action) string {
	if a.Kind == migration.ActDone {
		return "done: " + a.Desc
	}
	return fmt.Sprintf("step %d/%d: %s", a.Step, a.Steps, a.Desc)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Next prints the current action of the state file as shell assignments
// (action, step, steps, batch, batches, goal, mode, protocol, want, nodes,
// pairs, desc, attempts, last_error) for the script to eval.
func Next(path string, out io.Writer) error {
	s, err := LoadState(path)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("no state file %s: run plan first", path)
	}
	a := s.Next()
	var pairs []string
	for _, p := range a.Pairs {
		pairs = append(pairs, p.From+">"+p.To+">"+p.Addr)
	}
	mode := ""
	if a.Mode.Valid() {
		mode = a.Mode.String()
	}
	vars := [][2]string{
		{"action", string(a.Kind)}, {"goal", string(a.Goal)}, {"phase", string(a.Phase)},
		{"step", fmt.Sprint(a.Step)}, {"steps", fmt.Sprint(a.Steps)},
		{"batch", fmt.Sprint(a.Batch)}, {"batches", fmt.Sprint(a.Batches)},
		{"mode", mode}, {"protocol", a.Protocol}, {"want", string(a.Want)},
		{"nodes", strings.Join(a.Nodes, " ")}, {"pairs", strings.Join(pairs, " ")},
		{"desc", a.Desc}, {"attempts", fmt.Sprint(s.Attempts)}, {"last_error", s.LastError},
	}
	for _, kv := range vars {
		fmt.Fprintf(out, "%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	return nil
}

// Begin records that the driver starts the current action.
func Begin(path string) error {
	s, err := LoadState(path)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("no state file %s: run plan first", path)
	}
	if err := s.Begin(); err != nil {
		return err
	}
	return SaveState(path, s)
}

// Record feeds the outcome of the current action to the state file.
func Record(path string, ok bool, detail string) error {
	s, err := LoadState(path)
	if err != nil {
		return err
	}
	if s == nil {
		return fmt.Errorf("no state file %s: run plan first", path)
	}
	if err := s.Record(ok, detail); err != nil {
		return err
	}
	return SaveState(path, s)
}

// Check tests a condition on the cluster view: "preflight" (for goal), or
// a migration.Want on the named nodes (all when none). Unmet conditions
// are printed, one per line, and give ErrUnmet.
func Check(view migration.ClusterView, what string, goal migration.Goal, nodes []string, out io.Writer) error {
	var unmet []string
	if what == "preflight" {
		unmet = view.Preflight(goal)
	} else {
		w, err := migration.ParseWant(what)
		if err != nil {
			return err
		}
		unmet = view.Unmet(w, nodes)
	}
	for _, u := range unmet {
		fmt.Fprintln(out, u)
	}
	if len(unmet) > 0 {
		return ErrUnmet
	}
	return nil
}

// Status prints where the state file's plan is.
func Status(path string, out io.Writer) error {
	s, err := LoadState(path)
	if err != nil {
		return err
	}
	if s == nil {
		fmt.Fprintf(out, "no migration state in %s\n", path)
		return nil
	}
	a := s.Next()
	fmt.Fprintf(out, "%s: %s\n", s.Goal, describe(a))
	if s.LastError != "" {
		fmt.Fprintf(out, "last attempt (%d failed) failed: %s\n", s.Attempts, s.LastError)
	}
	return nil
}
