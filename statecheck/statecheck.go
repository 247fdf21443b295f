// Package statecheck judges what a daemon found in its state directory at
// start: from the findings its stores report (a file missing, damaged,
// cut short, not provably whole, inconsistent with another, or in an old
// format) it decides whether the daemon starts, recovers in a fail-closed
// way, or refuses to start, and says for each file what was lost and the
// exact recovery (docs/SECURITY.md section 7).
//
// The package is pure: it reads no file. internal/store and the daemons
// inspect the files and pass the findings in.
package statecheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Role is the kind of daemon a state directory belongs to.
type Role uint8

// Roles.
const (
	RoleServer Role = iota + 1
	RoleMom
)

func (r Role) String() string {
	switch r {
	case RoleServer:
		return "server"
	case RoleMom:
		return "mom"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Problem is what is wrong with one file.
type Problem uint8

// Problems, as the stores report them.
const (
	// Missing: a file the directory must hold is absent.
	Missing Problem = iota + 1
	// Damaged: present but it does not decode (magic, checksum, syntax),
	// or a record its own header vouches for is bad (zeroed, overwritten).
	Damaged
	// Truncated: shorter than its own header or seal says: emptied, or cut
	// at a record boundary or in the middle of a record.
	Truncated
	// Unproven: it cannot be proven whole: the daemon's machine restarted
	// while the file had appends not yet synced.
	Unproven
	// Inconsistent: its generation disagrees with its companion file's
	// (one of the two was restored alone, or deleted and recreated).
	Inconsistent
	// Upgraded: an old format was read; nothing is lost, the file is
	// rewritten in the current format.
	Upgraded
)

func (p Problem) String() string {
	switch p {
	case Missing:
		return "missing"
	case Damaged:
		return "damaged"
	case Truncated:
		return "truncated"
	case Unproven:
		return "not provably whole"
	case Inconsistent:
		return "inconsistent with its companion file"
	case Upgraded:
		return "old format"
	}
	return fmt.Sprintf("Problem(%d)", uint8(p))
}

// Finding is one thing a store found wrong with one file.
type Finding struct {
	File    string // base name in the state directory
	Problem Problem
	Detail  string // what exactly: offsets, counts, the decoder's error
}

// Step is one fail-closed recovery action the daemon takes at start.
type Step uint8

// Recovery steps.
const (
	// StepMarksFloor: start the replay guard with a recovery floor (the
	// wall clock now) and every restored mark unvouched
	// (ping.Recovery), persisted by the mark store.
	StepMarksFloor Step = iota + 1
	// StepCeilingFromClock: the stamper restarts at the wall clock plus
	// its reserve.
	StepCeilingFromClock
	// StepDenyHold: the MOM admits no peer until the server's DenySet
	// has arrived and been applied (ping.DenyList.Hold).
	StepDenyHold
	// StepLegacyHold: the MOM refuses every legacy (v1) admission until
	// the server's NodeUpgraded replace has arrived.
	StepLegacyHold
	// StepKeyringRefetch: the MOM starts with no cluster key: it seals
	// and admits nothing until the Welcome brings its keys again.
	StepKeyringRefetch
	// StepJobsDropped: the MOM starts without jobs.
	StepJobsDropped
	// StepRotateWithholdDeny: the server starts a key rotation at once
	// and sends no DenySet (so no MOM lifts a deny) until it completes:
	// then no key a deleted node could hold is left.
	StepRotateWithholdDeny
	// StepRotateNow: the server starts a key rotation at once (the
	// record of the interrupted one is lost).
	StepRotateNow
	// StepRewriteManifest: the manifest is written again, listing the
	// files present once the recovery has recreated the others.
	StepRewriteManifest
	// StepSessionsHold: the MOM's sealed-session state is held at its
	// strictest (no fallback to an unsealed swap, the strongest IM
	// protection) until the server's Welcome and set of sealed nodes
	// bring it again.
	StepSessionsHold
)

var stepNames = map[Step]string{
	StepMarksFloor:         "marks_floor",
	StepCeilingFromClock:   "ceiling_from_clock",
	StepDenyHold:           "deny_hold",
	StepLegacyHold:         "legacy_hold",
	StepKeyringRefetch:     "keyring_refetch",
	StepJobsDropped:        "jobs_dropped",
	StepRotateWithholdDeny: "rotate_withhold_deny",
	StepRotateNow:          "rotate_now",
	StepRewriteManifest:    "rewrite_manifest",
	StepSessionsHold:       "sessions_hold",
}

// AllSteps returns every recovery step, in order, so that the counter
// exports each (0 until taken).
func AllSteps() []Step {
	out := make([]Step, 0, len(stepNames))
	for s := StepMarksFloor; s <= StepSessionsHold; s++ {
		out = append(out, s)
	}
	return out
}

// String is the step's label, for the log line and the counter.
func (s Step) String() string {
	if n, ok := stepNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Step(%d)", uint8(s))
}

// Action is what the daemon does.
type Action uint8

// Actions.
const (
	Start   Action = iota + 1 // nothing lost
	Recover                   // something lost; recover with Steps, loudly
	Refuse                    // do not start
)

func (a Action) String() string {
	switch a {
	case Start:
		return "start"
	case Recover:
		return "recover"
	case Refuse:
		return "refuse"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Entry is the judgement of one finding.
type Entry struct {
	Finding
	Lost string // what its loss means
	Does string // recovered: what the daemon does about it; refused: the recovery
	Doc  string // where the runbook is
}

// Verdict is what the daemon does with its state directory.
type Verdict struct {
	Action    Action
	Refused   []Entry // files that forbid starting
	Recovered []Entry // files the daemon recovers from, fail-closed
	Upgraded  []Entry // files read in an old format
	Steps     []Step  // recovery steps, each once, in order
}

// ErrStateLost means the state directory lost something the daemon cannot
// recover from safely; the error names each file, what was lost and the
// recovery.
var ErrStateLost = errors.New("state directory lost state the daemon cannot recover from safely")

// Input is what Judge reads.
type Input struct {
	Role     Role
	Dir      string // the state directory, for the recovery commands
	Findings []Finding
}

// policy is how one file of one role is judged.
type policy struct {
	refuse bool
	// refuseDamaged refuses a damaged file and recovers the other
	// problems: a journal line that fails its checksum before the end is
	// not dropped with the lines after it.
	refuseDamaged bool
	steps         []Step
	lost          string
	does          string
	doc           string
}

const (
	docStateLoss = "docs/SECURITY.md section 7"
	docBackups   = "docs/DEPLOYMENT.md section 7"
	docEnroll    = "docs/DEPLOYMENT.md section 5"
	docKeys      = "docs/KEYS.md"
)

func policies(role Role, dir string) map[string]policy {
	restoreServer := fmt.Sprintf("stop the server, restore %s whole from its last backup and start it again (never single files). "+
		"Do not run `momgate-server init`: a new identity is not the one every MOM pins, and every node would have to be enrolled again", dir)
	reenroll := fmt.Sprintf("restore %s from a backup of this node, or enroll the node again: on the server host "+
		"`momgate-qmgr -c \"delete node NAME\"` and `momgate-qmgr -c \"create node NAME Mom=ADDR\"`, then move %s aside "+
		"and start the MOM with the new token (MOMGATE_MOM_ENROLL)", dir, dir)
	marks := policy{steps: []Step{StepMarksFloor},
		lost: "replay high-water marks: a PING admitted before the loss could be admitted again",
		does: "refuses every PING it cannot prove newer than the loss: above the recovery floor (the wall clock now) and the server's attested floor, or, while the server cannot attest the sender, above the recovery floor plus the freshness window; with freshness 0 only attested ones",
		doc:  docStateLoss}
	ceiling := policy{steps: []Step{StepCeilingFromClock},
		lost: "the timestamp ceiling: the highest timestamp this node may have issued",
		does: "issues timestamps from the wall clock plus the reserve (10 s); if the clock had also been set back further than that, the server and sisters refuse this node as replay until its clock passes its old timestamps (fail closed)",
		doc:  docStateLoss}
	manifest := policy{steps: []Step{StepRewriteManifest},
		lost: "the list of files this directory must hold",
		does: "checks every file a directory of this role holds and writes the manifest again",
		doc:  docStateLoss}
	switch role {
	case RoleServer:
		registry := policy{refuse: true,
			lost: "node registry records (nodes, enrollments, tokens, attributes): a lost delete would bring a deleted node back with its identity, a lost mode or upgrade mark would allow a downgrade",
			does: restoreServer, doc: docBackups}
		return map[string]policy{
			"identity.json": {refuse: true, lost: "the server identity key every MOM pins (enrollment tokens carry its fingerprint)", does: restoreServer, doc: docBackups},
			"keyring.json":  {refuse: true, lost: "the cluster keys", does: restoreServer, doc: docBackups},
			"state.json":    registry,
			"state.journal": registry,
			"deny.json": {steps: []Step{StepRotateWithholdDeny},
				lost: "deny entries of deleted and readdressed nodes: an empty DenySet would make every MOM lift them",
				does: "starts a key rotation at once and sends no DenySet until it has completed (MOMs keep their lists; one that lost its own waits): then no key a deleted node could hold is left",
				doc:  docStateLoss},
			"deny.journal": {steps: []Step{StepRotateWithholdDeny}, refuseDamaged: true,
				lost: "the changes to the deny list since deny.json was last written (deny entries of deleted and readdressed nodes)",
				does: "missing, cut or not following deny.json: starts a key rotation at once and sends no DenySet until it has completed, as for a lost deny.json; damaged (a line that fails its checksum, or whose record does not replay): refuses the start; " +
					restoreServer + ", or move deny.json and deny.journal aside to recover as from a lost deny list", doc: docStateLoss},
			"rotation.json": {steps: []Step{StepRotateNow},
				lost: "the record of the key rotation in progress (a delete node's rotation may still have been queued)",
				does: "starts a new key rotation at once", doc: docKeys},
			"rotation.journal": {steps: []Step{StepRotateNow}, refuseDamaged: true,
				lost: "the steps of the key rotation since rotation.json was last written (a delete node's rotation may still have been queued)",
				does: "missing, cut or not following rotation.json: starts a new key rotation at once; damaged (a line that fails its checksum, or whose record does not replay): refuses the start; " +
					restoreServer + ", or move rotation.json and rotation.journal aside to start a new key rotation at once", doc: docKeys},
			"marks.snap":    marks,
			"marks.log":     marks,
			"ceiling":       ceiling,
			"manifest.json": manifest,
		}
	case RoleMom:
		return map[string]policy{
			"identity.json": {refuse: true, lost: "this node's identity key, registered at the server at enrollment", does: reenroll, doc: docEnroll},
			"mom.json":      {refuse: true, lost: "the enrollment (node id, name, pinned server key)", does: reenroll, doc: docEnroll},
			"keyring.json": {steps: []Step{StepKeyringRefetch},
				lost: "the cluster keys",
				does: "starts without keys: seals and admits nothing until the server's Welcome brings them again, wrapped for this node (manual distribution: import the key file again)",
				doc:  docKeys},
			"deny.json": {steps: []Step{StepDenyHold},
				lost: "the deny list: a deleted node could be admitted under a key it still holds",
				does: "admits no peer until the server's DenySet has arrived", doc: docStateLoss},
			"legacy.json": {steps: []Step{StepLegacyHold},
				lost: "the server's mode as last heard and the set of upgraded nodes: a legacy (v1) admission of an upgraded node (a downgrade)",
				does: "refuses every legacy admission until the server's upgraded set has arrived (or the server is heard in ping mode, which admits no legacy connection), and follows ping mode until the server's mode is heard",
				doc:  docStateLoss},
			"sessions.json": {steps: []Step{StepSessionsHold},
				lost: "the sealed-session state (whether the server speaks sealed sessions, im_security as last heard, the sisters that speak them): an unsealed swap could be forced on a sister that speaks them",
				does: "refuses every fallback to an unsealed swap and asks the strongest IM protection until the server's Welcome and its set of sealed nodes have arrived",
				doc:  docStateLoss},
			"jobs.json": {steps: []Step{StepJobsDropped},
				lost: "the jobs this MOM was mother superior or sister of",
				does: "starts without jobs (no admission depends on them); resubmit them", doc: docStateLoss},
			"marks.snap":    marks,
			"marks.log":     marks,
			"ceiling":       ceiling,
			"manifest.json": manifest,
		}
	}
	return nil
}

// Judge decides what the daemon does with what it found. A file it has no
// rule for refuses the start: a state it does not understand is not one
// it can trust.
func Judge(in Input) Verdict {
	rules := policies(in.Role, in.Dir)
	v := Verdict{Action: Start}
	for _, f := range in.Findings {
		p, known := rules[f.File]
		e := Entry{Finding: f, Lost: p.lost, Does: p.does, Doc: p.doc}
		switch {
		case f.Problem == Upgraded:
			e.Lost, e.Does = "nothing", "rewrites it in the current format"
			v.Upgraded = append(v.Upgraded, e)
			continue
		case !known:
			e.Lost = "unknown to this version"
			e.Does = fmt.Sprintf("restore %s from a backup made by this version", in.Dir)
			e.Doc = docBackups
			v.Refused = append(v.Refused, e)
		case p.refuse || p.refuseDamaged && f.Problem == Damaged:
			v.Refused = append(v.Refused, e)
		default:
			v.Recovered = append(v.Recovered, e)
			for _, s := range p.steps {
				if !slices.Contains(v.Steps, s) {
					v.Steps = append(v.Steps, s)
				}
			}
		}
	}
	slices.Sort(v.Steps)
	switch {
	case len(v.Refused) > 0:
		v.Action = Refuse
	case len(v.Recovered) > 0:
		v.Action = Recover
	}
	return v
}

// Has reports whether the verdict includes step s.
func (v Verdict) Has(s Step) bool { return slices.Contains(v.Steps, s) }

// Err returns nil unless the verdict refuses the start; then an error
// wrapping ErrStateLost that names each file, what is wrong with it, what
// was lost and the recovery with its runbook section.
func (v Verdict) Err(dir string) error {
	if v.Action != Refuse {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v:", dir, ErrStateLost)
	for _, e := range v.Refused {
		fmt.Fprintf(&b, "\n  %s: %s", e.File, e.Problem)
		if e.Detail != "" {
			fmt.Fprintf(&b, " (%s)", e.Detail)
		}
		fmt.Fprintf(&b, "\n    lost: %s\n    recovery: %s (%s)", e.Lost, e.Does, e.Doc)
	}
	return &refusal{msg: b.String()}
}

type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return ErrStateLost }

// Lines returns one line per recovered and upgraded file, for the
// daemon's error-level (recovered) and info-level (upgraded) log.
func (v Verdict) Lines() (recovered, upgraded []string) {
	for _, e := range v.Recovered {
		recovered = append(recovered, line(e))
	}
	for _, e := range v.Upgraded {
		upgraded = append(upgraded, line(e))
	}
	return recovered, upgraded
}

func line(e Entry) string {
	s := e.File + ": " + e.Problem.String()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	s += "; lost: " + e.Lost + "; the daemon " + e.Does
	if e.Doc != "" {
		s += " (" + e.Doc + ")"
	}
	return s
}

// BaseFiles returns the files of Files(role, enrolled) that every
// manifest lists, since the first version that wrote manifests: a
// manifest that lists fewer was edited, not written by a daemon.
func BaseFiles(role Role, enrolled bool) []string {
	return slices.DeleteFunc(Files(role, enrolled), func(f string) bool { return f == "sessions.json" || f == "rotation.journal" || f == "deny.journal" })
}

// Files returns the files a state directory of role holds, beside the
// manifest, once the daemon has started on it with this version: the
// server's after init, a MOM's (enrolled: with its identity, keyring and
// enrollment). Their absence is a loss.
func Files(role Role, enrolled bool) []string {
	switch role {
	case RoleServer:
		return []string{"identity.json", "keyring.json", "state.json", "state.journal", "deny.json", "deny.journal", "rotation.json", "rotation.journal", "marks.snap", "marks.log", "ceiling"}
	case RoleMom:
		f := []string{"deny.json", "legacy.json", "jobs.json", "sessions.json", "marks.snap", "marks.log", "ceiling"}
		if enrolled {
			f = append([]string{"identity.json", "keyring.json", "mom.json"}, f...)
		}
		return f
	}
	return nil
}
