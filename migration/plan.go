package migration

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/momgate/momgate/proto"
)

// Goal is what a plan does.
type Goal string

// Goals.
const (
	GoalMigrate  Goal = "migrate"  // legacy -> compat -> batches -> ping
	GoalRollback Goal = "rollback" // back to legacy, from wherever the cluster is
)

// Phase is one kind of step of a plan.
type Phase string

// Phases of a migration, in order; batch phases repeat per batch.
const (
	PhasePreflight  Phase = "preflight"   // server reachable, nodes up, mode known
	PhaseCompat     Phase = "compat"      // set server mode=compat
	PhaseWaitCompat Phase = "wait-compat" // every node back as a compat MOM
	PhaseRestart    Phase = "restart"     // batch: restart its MOMs with --protocol ping
	PhaseWaitBatch  Phase = "wait-batch"  // batch: its nodes up, v2 only, marked upgraded
	PhaseVerify     Phase = "verify"      // batch: PING swaps both ways with peers
	PhaseFinalize   Phase = "finalize"    // set server mode=ping: pushes stop, v1 refused
	PhaseWaitFinal  Phase = "wait-final"  // every node up and upgraded
)

// Phases of a rollback, in order.
const (
	PhaseRBPreflight  Phase = "rollback-preflight"   // server reachable, mode known
	PhaseRBCompat     Phase = "rollback-compat"      // set server mode=compat
	PhaseRBRestart    Phase = "rollback-restart"     // restart upgraded MOMs following the server
	PhaseRBWait       Phase = "rollback-wait"        // they are back as compat MOMs
	PhaseRBClear      Phase = "rollback-clear"       // clear their no-downgrade marks
	PhaseRBLegacy     Phase = "rollback-legacy"      // set server mode=legacy
	PhaseRBWaitLegacy Phase = "rollback-wait-legacy" // every node up speaking v1
)

var knownPhases = []Phase{PhasePreflight, PhaseCompat, PhaseWaitCompat, PhaseRestart, PhaseWaitBatch, PhaseVerify,
	PhaseFinalize, PhaseWaitFinal, PhaseRBPreflight, PhaseRBCompat, PhaseRBRestart, PhaseRBWait, PhaseRBClear,
	PhaseRBLegacy, PhaseRBWaitLegacy}

func batchPhase(p Phase) bool { return p == PhaseRestart || p == PhaseWaitBatch || p == PhaseVerify }

// Step is one step of a plan; Batch is the 0-based batch of batch phases.
type Step struct {
	Phase Phase `json:"phase"`
	Batch int   `json:"batch,omitempty"`
}

// ActionKind is what the driver has to do for a step.
type ActionKind string

// Action kinds.
const (
	ActPreflight ActionKind = "preflight"      // check the cluster view (ClusterView.Preflight)
	ActSetMode   ActionKind = "set-mode"       // momgate-qmgr -c "set server mode=MODE"
	ActRestart   ActionKind = "restart"        // run the site's restart hook for each node
	ActWait      ActionKind = "wait"           // poll the cluster view until Unmet(Want, Nodes) is empty
	ActVerify    ActionKind = "verify"         // momgate-mom ping FROM -> TO for each pair
	ActClear     ActionKind = "clear-upgraded" // momgate-qmgr -c "set node NODES upgraded=false"
	ActDone      ActionKind = "done"           // the plan is complete
)

// Restart protocols: what an upgraded MOM is restarted with.
const (
	ProtocolPing   = "ping"   // speak PING only
	ProtocolFollow = "follow" // follow the server's mode (the MOM's default)
)

// Pair is one PING swap to verify: the MOM of From opens an IM connection
// to To's IM address Addr. Both must admit each other.
type Pair struct {
	From string `json:"from"`
	To   string `json:"to"`
	Addr string `json:"addr"`
}

// Action is what the driver must carry out next. It is derived from the
// plan's current step only, so asking again after an interruption gives the
// same action, and every action is safe to repeat.
type Action struct {
	Kind     ActionKind
	Goal     Goal
	Phase    Phase
	Mode     proto.Mode // ActSetMode
	Nodes    []string   // ActRestart, ActClear; ActWait (empty: every node)
	Protocol string     // ActRestart: ProtocolPing or ProtocolFollow
	Want     Want       // ActWait
	Pairs    []Pair     // ActVerify
	Step     int        // 1-based number of this step
	Steps    int        // number of steps in the plan
	Batch    int        // 1-based batch number of batch steps, else 0
	Batches  int        // number of batches
	Desc     string     // one line for progress output
}

// Options shape a new plan.
type Options struct {
	BatchSize   int // MOMs restarted per batch (>= 1)
	VerifyPeers int // peers each upgraded node swaps PINGs with (>= 1)
}

// Errors of the plan.
var (
	ErrFinished = errors.New("plan already finished")
	ErrBadPlan  = errors.New("cannot plan")
)

// State is a plan and how far it got. It is what the migration helper
// persists (EncodeState) after every recorded result, so the driver can be
// interrupted at any point and re-run.
type State struct {
	Format      int               `json:"format"`
	Goal        Goal              `json:"goal"`
	Steps       []Step            `json:"steps"`
	Pos         int               `json:"pos"` // index of the current step; len(Steps) when finished
	Nodes       []string          `json:"nodes"`
	Addrs       map[string]string `json:"addrs"` // node -> IM address ip:port
	Batches     [][]string        `json:"batches"`
	Rollback    []string          `json:"rollback"` // nodes a rollback restarts and clears
	VerifyPeers int               `json:"verify_peers"`
	Attempts    int               `json:"attempts"` // failed attempts of the current step
	LastError   string            `json:"last_error,omitempty"`
	// Started is set when the driver begins carrying out the current step
	// (Begin), so a rollback knows whether a restart step may have
	// restarted some of its MOMs already.
	Started bool `json:"started,omitempty"`
}

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// NewPlan plans goal on the cluster as v shows it. A migration upgrades
// the nodes not yet upgraded, sorted by name, in batches of
// opt.BatchSize; a rollback restarts and clears the upgraded ones. A
// goal already reached gives a finished plan.
func NewPlan(goal Goal, v ClusterView, opt Options) (*State, error) {
	if opt.BatchSize < 1 {
		return nil, fmt.Errorf("%w: batch size %d, want >= 1", ErrBadPlan, opt.BatchSize)
	}
	if opt.VerifyPeers < 1 {
		return nil, fmt.Errorf("%w: verify peers %d, want >= 1", ErrBadPlan, opt.VerifyPeers)
	}
	s := &State{Format: 1, Goal: goal, Addrs: map[string]string{}, VerifyPeers: opt.VerifyPeers,
		Batches: [][]string{}, Rollback: []string{}}
	for _, n := range v.Nodes {
		if n.NeverEnrolled {
			continue // nothing to restart or wait for; see ClusterView.NeverEnrolled
		}
		if !nodeNameRE.MatchString(n.Name) {
			return nil, fmt.Errorf("%w: node name %q", ErrBadPlan, n.Name)
		}
		if _, err := netip.ParseAddrPort(n.IMAddr); err != nil {
			return nil, fmt.Errorf("%w: node %s IM address %q", ErrBadPlan, n.Name, n.IMAddr)
		}
		s.Nodes = append(s.Nodes, n.Name)
		s.Addrs[n.Name] = n.IMAddr
	}
	sort.Strings(s.Nodes)
	switch goal {
	case GoalMigrate:
		var todo []string
		for _, name := range s.Nodes {
			if !v.node(name).Upgraded {
				todo = append(todo, name)
			}
		}
		if v.Mode == proto.ModePing && len(todo) == 0 {
			s.Pos = 0 // nothing to do: finished plan
			return s, nil
		}
		for i := 0; i < len(todo); i += opt.BatchSize {
			s.Batches = append(s.Batches, todo[i:min(i+opt.BatchSize, len(todo))])
		}
		s.Steps = []Step{{Phase: PhasePreflight}}
		if v.Mode != proto.ModePing {
			s.Steps = append(s.Steps, Step{Phase: PhaseCompat}, Step{Phase: PhaseWaitCompat})
		}
		for b := range s.Batches {
			s.Steps = append(s.Steps, Step{PhaseRestart, b}, Step{PhaseWaitBatch, b}, Step{PhaseVerify, b})
		}
		// Already in ping mode (nodes left to upgrade): the server never
		// goes back to compat, which would reopen legacy admission.
		if v.Mode != proto.ModePing {
			s.Steps = append(s.Steps, Step{Phase: PhaseFinalize})
		}
		s.Steps = append(s.Steps, Step{Phase: PhaseWaitFinal})
	case GoalRollback:
		s.planRollback(v, nil)
	default:
		return nil, fmt.Errorf("%w: goal %q", ErrBadPlan, goal)
	}
	return s, nil
}

// planRollback replaces the remaining steps with a rollback. extra are
// nodes this plan restarted that must be rolled back even if the view
// does not show them upgraded (down, say).
func (s *State) planRollback(v ClusterView, extra []string) {
	s.Goal = GoalRollback
	set := map[string]bool{}
	for _, n := range v.Nodes {
		if n.Upgraded {
			set[n.Name] = true
		}
	}
	for _, n := range extra {
		set[n] = true
	}
	s.Rollback = []string{}
	for n := range set {
		s.Rollback = append(s.Rollback, n)
	}
	sort.Strings(s.Rollback)
	s.Steps, s.Pos, s.Attempts, s.LastError, s.Started = nil, 0, 0, "", false
	if v.Mode == proto.ModeLegacy && len(s.Rollback) == 0 {
		return // already legacy with nothing upgraded: finished
	}
	s.Steps = []Step{{Phase: PhaseRBPreflight}, {Phase: PhaseRBCompat}}
	if len(s.Rollback) > 0 {
		s.Steps = append(s.Steps, Step{Phase: PhaseRBRestart}, Step{Phase: PhaseRBWait}, Step{Phase: PhaseRBClear})
	}
	s.Steps = append(s.Steps, Step{Phase: PhaseRBLegacy}, Step{Phase: PhaseRBWaitLegacy})
}

// StartRollback turns the plan, wherever it is, into a rollback: the
// nodes upgraded per v, and those of batches this plan has started, are
// restarted following the server, their marks cleared, and the server set
// back to legacy.
func (s *State) StartRollback(v ClusterView) {
	var started []string
	if s.Goal == GoalMigrate {
		for i, st := range s.Steps {
			if st.Phase == PhaseRestart && (i < s.Pos || (i == s.Pos && s.Started)) {
				started = append(started, s.Batches[st.Batch]...)
			}
		}
	} else {
		started = s.Rollback
	}
	s.planRollback(v, started)
}

// Finished reports whether every step is done.
func (s *State) Finished() bool { return s.Pos >= len(s.Steps) }

// Current is the current step; ok is false when the plan is finished.
func (s *State) Current() (Step, bool) {
	if s.Finished() {
		return Step{}, false
	}
	return s.Steps[s.Pos], true
}

// Begin notes that the driver starts carrying out the current action.
func (s *State) Begin() error {
	if s.Finished() {
		return ErrFinished
	}
	s.Started = true
	return nil
}

// Record feeds the outcome of the current action: success moves to the
// next step; failure stays (the same action is retried on the next run)
// and keeps detail for status output.
func (s *State) Record(ok bool, detail string) error {
	if s.Finished() {
		return ErrFinished
	}
	if ok {
		s.Pos++
		s.Attempts, s.LastError, s.Started = 0, "", false
		return nil
	}
	s.Attempts++
	s.LastError = detail
	return nil
}

// Next returns the action for the current step (ActDone when finished).
func (s *State) Next() Action {
	a := Action{Goal: s.Goal, Steps: len(s.Steps), Batches: len(s.Batches)}
	st, ok := s.Current()
	if !ok {
		a.Kind, a.Step = ActDone, len(s.Steps)
		if s.Goal == GoalRollback {
			a.Desc = "rollback complete: server in legacy mode, no node upgraded"
		} else {
			a.Desc = "migration complete: server in ping mode, every node upgraded"
		}
		return a
	}
	a.Phase, a.Step = st.Phase, s.Pos+1
	if batchPhase(st.Phase) {
		a.Batch = st.Batch + 1
	}
	batch := func() []string {
		if st.Batch < len(s.Batches) {
			return slices.Clone(s.Batches[st.Batch])
		}
		return nil
	}
	switch st.Phase {
	case PhasePreflight, PhaseRBPreflight:
		a.Kind, a.Desc = ActPreflight, "preflight: server reachable, nodes up, current mode"
	case PhaseCompat, PhaseRBCompat:
		a.Kind, a.Mode = ActSetMode, proto.ModeCompat
		a.Desc = "set server mode=compat: address lists and PING both accepted"
	case PhaseWaitCompat:
		a.Kind, a.Want = ActWait, WantCompat
		a.Desc = "wait until every MOM is back speaking v2 and v1 (compat)"
	case PhaseRestart:
		a.Kind, a.Nodes, a.Protocol = ActRestart, batch(), ProtocolPing
		a.Desc = fmt.Sprintf("batch %d/%d: restart %s with --protocol ping", a.Batch, a.Batches, strings.Join(a.Nodes, ","))
	case PhaseWaitBatch:
		a.Kind, a.Nodes, a.Want = ActWait, batch(), WantUpgraded
		a.Desc = fmt.Sprintf("batch %d/%d: wait until %s speak PING only and are marked upgraded", a.Batch, a.Batches, strings.Join(a.Nodes, ","))
	case PhaseVerify:
		a.Kind, a.Pairs = ActVerify, s.pairs(batch())
		a.Desc = fmt.Sprintf("batch %d/%d: verify %d PING swaps between upgraded nodes and their peers", a.Batch, a.Batches, len(a.Pairs))
	case PhaseFinalize:
		a.Kind, a.Mode = ActSetMode, proto.ModePing
		a.Desc = "finalize: set server mode=ping: no more pushes, v1 refused"
	case PhaseWaitFinal:
		a.Kind, a.Want = ActWait, WantUpgraded
		a.Desc = "wait until every node speaks PING only and is marked upgraded"
	case PhaseRBRestart:
		a.Kind, a.Nodes, a.Protocol = ActRestart, slices.Clone(s.Rollback), ProtocolFollow
		a.Desc = fmt.Sprintf("rollback: restart %s following the server (compat)", strings.Join(a.Nodes, ","))
	case PhaseRBWait:
		a.Kind, a.Nodes, a.Want = ActWait, slices.Clone(s.Rollback), WantCompat
		a.Desc = fmt.Sprintf("rollback: wait until %s are back as compat MOMs", strings.Join(a.Nodes, ","))
	case PhaseRBClear:
		a.Kind, a.Nodes = ActClear, slices.Clone(s.Rollback)
		a.Desc = fmt.Sprintf("rollback: clear the upgrade marks of %s", strings.Join(a.Nodes, ","))
	case PhaseRBLegacy:
		a.Kind, a.Mode = ActSetMode, proto.ModeLegacy
		a.Desc = "rollback: set server mode=legacy"
	case PhaseRBWaitLegacy:
		a.Kind, a.Want = ActWait, WantLegacy
		a.Desc = "rollback: wait until every MOM is back speaking v1"
	}
	return a
}

// pairs chooses the verification swaps of a batch: each upgraded node and
// the VerifyPeers nodes after it in name order (wrapping), both ways.
func (s *State) pairs(batch []string) []Pair {
	var out []Pair
	for _, u := range batch {
		i := slices.Index(s.Nodes, u)
		if i < 0 {
			continue
		}
		for k := 1; k <= s.VerifyPeers && k < len(s.Nodes); k++ {
			p := s.Nodes[(i+k)%len(s.Nodes)]
			out = append(out, Pair{From: u, To: p, Addr: s.Addrs[p]}, Pair{From: p, To: u, Addr: s.Addrs[u]})
		}
	}
	return out
}

// Simulate lists every action from the current step to the end, as if
// each succeeded: the dry run. It does not change s.
func (s *State) Simulate() []Action {
	c := *s
	c.Steps = slices.Clone(s.Steps)
	var out []Action
	for range len(c.Steps) + 1 {
		a := c.Next()
		out = append(out, a)
		if a.Kind == ActDone {
			break
		}
		_ = c.Record(true, "")
	}
	return out
}

// Validate checks a decoded state for consistency.
func (s *State) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadState, fmt.Sprintf(format, args...))
	}
	if s.Format != 1 {
		return bad("format %d", s.Format)
	}
	if s.Goal != GoalMigrate && s.Goal != GoalRollback {
		return bad("goal %q", s.Goal)
	}
	if s.Pos < 0 || s.Pos > len(s.Steps) {
		return bad("position %d of %d steps", s.Pos, len(s.Steps))
	}
	if s.VerifyPeers < 1 || s.Attempts < 0 {
		return bad("verify_peers %d, attempts %d", s.VerifyPeers, s.Attempts)
	}
	known := map[string]bool{}
	for _, n := range s.Nodes {
		if !nodeNameRE.MatchString(n) || known[n] {
			return bad("node %q invalid or repeated", n)
		}
		known[n] = true
		if _, err := netip.ParseAddrPort(s.Addrs[n]); err != nil {
			return bad("node %s address %q", n, s.Addrs[n])
		}
	}
	if len(s.Addrs) != len(s.Nodes) {
		return bad("%d addresses for %d nodes", len(s.Addrs), len(s.Nodes))
	}
	for b, batch := range s.Batches {
		if len(batch) == 0 {
			return bad("batch %d empty", b)
		}
		for _, n := range batch {
			if !known[n] {
				return bad("batch %d names unknown node %q", b, n)
			}
		}
	}
	for _, n := range s.Rollback {
		if !nodeNameRE.MatchString(n) {
			return bad("rollback node %q invalid", n)
		}
	}
	for i, st := range s.Steps {
		if !slices.Contains(knownPhases, st.Phase) {
			return bad("step %d: phase %q", i, st.Phase)
		}
		if batchPhase(st.Phase) && (st.Batch < 0 || st.Batch >= len(s.Batches)) {
			return bad("step %d: batch %d of %d", i, st.Batch, len(s.Batches))
		}
		if !batchPhase(st.Phase) && st.Batch != 0 {
			return bad("step %d: batch on a %s step", i, st.Phase)
		}
	}
	return nil
}

// EncodeState encodes s as indented JSON.
func EncodeState(s *State) []byte { return mustJSON(s) }

// DecodeState strictly decodes and validates a state file.
func DecodeState(b []byte) (*State, error) {
	var s State
	if err := strictJSON(b, &s); err != nil {
		return nil, err
	}
	if s.Addrs == nil {
		s.Addrs = map[string]string{}
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}
