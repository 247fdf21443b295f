package statecheck

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	const dir = "/var/lib/momgate/x"
	f := func(file string, p Problem) Finding { return Finding{File: file, Problem: p, Detail: "d-" + file} }
	cases := []struct {
		name    string
		role    Role
		found   []Finding
		action  Action
		steps   []Step
		refused []string
		says    []string // in the refusal message
	}{
		{name: "nothing found", role: RoleMom, action: Start},
		{name: "upgrade only", role: RoleServer, found: []Finding{f("marks.log", Upgraded), f("state.journal", Upgraded)}, action: Start},
		{name: "mom marks log truncated", role: RoleMom, found: []Finding{f("marks.log", Truncated)}, action: Recover, steps: []Step{StepMarksFloor}},
		{name: "mom marks snapshot missing", role: RoleMom, found: []Finding{f("marks.snap", Missing)}, action: Recover, steps: []Step{StepMarksFloor}},
		{name: "mom marks unproven after reboot", role: RoleMom, found: []Finding{f("marks.log", Unproven)}, action: Recover, steps: []Step{StepMarksFloor}},
		{name: "mom both mark files and the deny list", role: RoleMom, found: []Finding{f("marks.log", Missing), f("marks.snap", Missing), f("deny.json", Missing)},
			action: Recover, steps: []Step{StepMarksFloor, StepDenyHold}},
		{name: "mom ceiling damaged", role: RoleMom, found: []Finding{f("ceiling", Damaged)}, action: Recover, steps: []Step{StepCeilingFromClock}},
		{name: "mom legacy and jobs", role: RoleMom, found: []Finding{f("jobs.json", Damaged), f("legacy.json", Missing)}, action: Recover, steps: []Step{StepLegacyHold, StepJobsDropped}},
		{name: "mom keyring", role: RoleMom, found: []Finding{f("keyring.json", Missing)}, action: Recover, steps: []Step{StepKeyringRefetch}},
		{name: "mom manifest", role: RoleMom, found: []Finding{f("manifest.json", Missing)}, action: Recover, steps: []Step{StepRewriteManifest}},
		{name: "mom identity", role: RoleMom, found: []Finding{f("identity.json", Missing), f("deny.json", Missing)}, action: Refuse,
			steps: []Step{StepDenyHold}, refused: []string{"identity.json"}, says: []string{"create node NAME Mom=ADDR", "MOMGATE_MOM_ENROLL", "docs/DEPLOYMENT.md section 5", "d-identity.json", dir}},
		{name: "mom enrollment", role: RoleMom, found: []Finding{f("mom.json", Damaged)}, action: Refuse, refused: []string{"mom.json"}},
		{name: "server journal cut", role: RoleServer, found: []Finding{f("state.journal", Truncated)}, action: Refuse,
			refused: []string{"state.journal"}, says: []string{"restore " + dir, "docs/DEPLOYMENT.md section 7", "Do not run `momgate-server init`", "deleted node back"}},
		{name: "server snapshot inconsistent", role: RoleServer, found: []Finding{f("state.json", Inconsistent)}, action: Refuse, refused: []string{"state.json"}},
		{name: "server identity and keyring", role: RoleServer, found: []Finding{f("identity.json", Missing), f("keyring.json", Damaged)}, action: Refuse,
			refused: []string{"identity.json", "keyring.json"}},
		{name: "server deny list", role: RoleServer, found: []Finding{f("deny.json", Missing)}, action: Recover, steps: []Step{StepRotateWithholdDeny}},
		{name: "server rotation record", role: RoleServer, found: []Finding{f("rotation.json", Damaged)}, action: Recover, steps: []Step{StepRotateNow}},
		{name: "server marks and ceiling", role: RoleServer, found: []Finding{f("marks.log", Damaged), f("ceiling", Missing)}, action: Recover,
			steps: []Step{StepMarksFloor, StepCeilingFromClock}},
		{name: "refusal wins over recovery", role: RoleServer, found: []Finding{f("deny.json", Missing), f("state.journal", Missing)}, action: Refuse,
			steps: []Step{StepRotateWithholdDeny}, refused: []string{"state.journal"}},
		{name: "unknown file refuses", role: RoleMom, found: []Finding{f("future.bin", Damaged)}, action: Refuse, refused: []string{"future.bin"}},
		{name: "a server file at a mom", role: RoleMom, found: []Finding{f("state.journal", Missing)}, action: Refuse, refused: []string{"state.journal"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(Input{Role: tc.role, Dir: dir, Findings: tc.found})
			if v.Action != tc.action {
				t.Fatalf("action %v, want %v", v.Action, tc.action)
			}
			if !slices.Equal(v.Steps, tc.steps) {
				t.Fatalf("steps %v, want %v", v.Steps, tc.steps)
			}
			var refused []string
			for _, e := range v.Refused {
				refused = append(refused, e.File)
			}
			if !slices.Equal(refused, tc.refused) {
				t.Fatalf("refused %v, want %v", refused, tc.refused)
			}
			err := v.Err(dir)
			if (err != nil) != (tc.action == Refuse) {
				t.Fatalf("Err = %v for action %v", err, v.Action)
			}
			if err != nil {
				if !errors.Is(err, ErrStateLost) {
					t.Fatalf("refusal does not wrap ErrStateLost: %v", err)
				}
				for _, r := range tc.refused {
					if !strings.Contains(err.Error(), r) {
						t.Fatalf("refusal does not name %s: %v", r, err)
					}
				}
				for _, s := range tc.says {
					if !strings.Contains(err.Error(), s) {
						t.Fatalf("refusal does not say %q:\n%v", s, err)
					}
				}
			}
			rec, upg := v.Lines()
			if len(rec) != len(v.Recovered) || len(upg) != len(v.Upgraded) {
				t.Fatal("Lines does not cover every entry")
			}
		})
	}
}

// TestEveryRecoveryIsDocumented: every rule names what was lost, what the
// daemon does and where the runbook is, and refusals never advise a
// command that destroys keys.
func TestEveryRecoveryIsDocumented(t *testing.T) {
	for _, role := range []Role{RoleServer, RoleMom} {
		for file, p := range policies(role, "/d") {
			if p.lost == "" || p.does == "" || !strings.HasPrefix(p.doc, "docs/") {
				t.Errorf("%v %s: incomplete rule %+v", role, file, p)
			}
			if p.refuse == (len(p.steps) > 0) {
				t.Errorf("%v %s: a rule either refuses or recovers", role, file)
			}
			if strings.Contains(p.does, "init --") || strings.Contains(p.does, "rm ") {
				t.Errorf("%v %s: advises a destructive command: %s", role, file, p.does)
			}
		}
	}
	for s := StepMarksFloor; s <= StepSessionsHold; s++ {
		if strings.HasPrefix(s.String(), "Step(") {
			t.Errorf("step %d has no label", s)
		}
	}
}
