package rotation

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// Errors of administrator requests.
var (
	ErrNotNext      = errors.New("not the key being distributed")
	ErrInconsistent = errors.New("rotation record and keyring disagree")
)

// Defaults of Params.
const (
	DefaultGrace    = 30 * time.Second
	DefaultTimeout  = 30 * time.Second
	DefaultDebounce = 500 * time.Millisecond
)

// Params are the machine's timers; the server may change them between
// events (key_grace is a live attribute).
type Params struct {
	Grace   time.Duration // how long the old key stays accepted after activation
	Timeout time.Duration // how long automatic distribution waits for acknowledgements
	Manual  bool          // key_distribution=manual: rotations started from now on push no key
	// Debounce is how long a distribution with a newer request waits for
	// more before it starts over with a fresh key, so that a burst of
	// deletes costs one restart, not one each (the deny is immediate).
	Debounce time.Duration
}

func (p Params) withDefaults() Params {
	if p.Grace <= 0 {
		p.Grace = DefaultGrace
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Debounce <= 0 {
		p.Debounce = DefaultDebounce
	}
	return p
}

// Steps name the actions, for logs and for the test-only crash hook
// (MOMGATE_TEST_CRASH_AT, docs/KEYS.md): the server crashes right after the
// action with that step has been executed.
const (
	StepDistributing = "distributing" // record: distribution of a new key begins
	StepNextSaved    = "next-saved"   // keyring: the new key stored as next
	StepUpdate       = "update"       // send: KeyUpdate to connected nodes
	StepActivating   = "activating"   // record: the decision to activate
	StepActivated    = "activated"    // keyring: new key active, old previous
	StepGrace        = "grace"        // record: grace period begins
	StepActivate     = "activate"     // send: KeyActivate to connected nodes
	StepRetiring     = "retiring"     // record: the decision to retire the old key
	StepRetired      = "retired"      // keyring: old key dropped
	StepRetire       = "retire"       // send: KeyRetire to connected nodes
	StepIdle         = "idle"         // record: rotation complete
	StepQueued       = "queued"       // record: a request queued behind the current rotation
	StepBehind       = "behind"       // record: nodes that missed a step, updated
	StepRepair       = "repair"       // keyring: a restart dropped an orphaned key
)

// Action is something the machine asks its shell to do, in order.
type Action interface {
	// Step names the action (one of the Step constants).
	Step() string
}

// SaveRecord asks the shell to persist the record atomically. Record is
// the record without its Behind list, which can name most of the nodes:
// Changes are the nodes whose membership of it changed since the previous
// SaveRecord (or since Restore), so that a shell can persist a step in
// bytes proportional to what changed (the server's rotation.journal,
// docs/KEYS.md). Apply rebuilds the whole record.
type SaveRecord struct {
	Record  Record // Behind is nil
	Changes []BehindChange
	Behind  int // how many nodes are behind after the step (for logs)
	step    string
}

// BehindChange is one node entering (Behind) or leaving the record's
// Behind list.
type BehindChange struct {
	Node   proto.NodeID
	Behind bool
}

// Apply returns prev, the whole record as persisted before a, with a
// applied: a's record with prev's Behind list changed by a.Changes. It
// costs O(len(prev.Behind)); a shell that keeps the list as a set applies
// Changes itself.
func (a SaveRecord) Apply(prev Record) Record {
	set := make(map[proto.NodeID]struct{}, len(prev.Behind)+len(a.Changes))
	for _, n := range prev.Behind {
		set[n] = struct{}{}
	}
	for _, c := range a.Changes {
		if c.Behind {
			set[c.Node] = struct{}{}
		} else {
			delete(set, c.Node)
		}
	}
	r := a.Record
	r.Queued = append([]string(nil), a.Record.Queued...)
	if len(set) > 0 {
		r.Behind = sortedIDs(set)
	}
	return r
}

// Step names the action.
func (a SaveRecord) Step() string { return a.step }

// SaveRing asks the shell to persist the keyring atomically and make it the
// live keyring (dropped keys are zeroed).
type SaveRing struct {
	Ring *keys.Keyring
	step string
}

// Step names the action.
func (a SaveRing) Step() string { return a.step }

// SendUpdate asks the shell to wrap Key for each node's identity and send
// it as KeyUpdate (state next). Key is a private copy: the shell zeroes it
// when it has sent it.
type SendUpdate struct {
	Seq uint64
	Key *keys.Key
	To  []proto.NodeID
}

// Step names the action.
func (SendUpdate) Step() string { return StepUpdate }

// SendActivate asks the shell to send KeyActivate to each node.
type SendActivate struct {
	Seq uint64
	Key keys.KeyID
	To  []proto.NodeID
}

// Step names the action.
func (SendActivate) Step() string { return StepActivate }

// SendRetire asks the shell to send KeyRetire to each node.
type SendRetire struct {
	Seq uint64
	Key keys.KeyID
	To  []proto.NodeID
}

// Step names the action.
func (SendRetire) Step() string { return StepRetire }

// Per-node progress in the distributing phase.
type waitState uint8

const (
	wPending waitState = iota + 1 // connected at the start, no answer yet
	wAcked                        // holds the new key
	wFailed                       // answered that it could not store it
	wMissed                       // left before answering
)

// Node key states reported by NodeState.
const (
	NodeCurrent   = "current"    // holds the keys it should
	NodeAcked     = "acked"      // distributing: stored the new key
	NodePending   = "pending"    // distributing: sent the new key, no answer yet
	NodeNeedsSync = "needs sync" // missed a step; catches up when it reconnects
)

// Machine is the rotation state machine. It is not safe for concurrent
// use: the server serialises events.
type Machine struct {
	rnd    io.Reader
	params Params
	rec    Record // Behind lives in the map below
	ring   *keys.Keyring

	deadline  time.Time // distributing (automatic): activate at the latest then
	restartAt time.Time // distributing with queued requests: start over then
	nodes     map[proto.NodeID]struct{}
	connected map[proto.NodeID]struct{}
	wait      map[proto.NodeID]waitState
	pending   int
	behind    map[proto.NodeID]struct{}
	// changed holds the nodes whose membership of behind may have
	// changed since the last SaveRecord.
	changed map[proto.NodeID]struct{}
}

// Restore rebuilds the machine from what the server persisted: the record,
// the keyring and the enrolled nodes. It returns the actions that finish
// an interrupted step (at most a few saves; sends go to nobody, since no
// node is connected yet). rnd supplies new keys.
func Restore(rnd io.Reader, params Params, rec Record, ring *keys.Keyring, nodes []proto.NodeID, now time.Time) (*Machine, []Action, error) {
	if ring == nil || ring.Active() == nil {
		return nil, nil, fmt.Errorf("restore rotation: %w", keys.ErrNoActive)
	}
	if rec.Phase == "" {
		rec.Phase = Idle
	}
	if !rec.Phase.Valid() {
		return nil, nil, fmt.Errorf("restore rotation: phase %q: %w", rec.Phase, ErrInvalidRecord)
	}
	m := &Machine{
		rnd: rnd, params: params.withDefaults(), rec: rec, ring: ring,
		nodes: map[proto.NodeID]struct{}{}, connected: map[proto.NodeID]struct{}{},
		wait: map[proto.NodeID]waitState{}, behind: map[proto.NodeID]struct{}{}, changed: map[proto.NodeID]struct{}{},
	}
	for _, n := range nodes {
		m.nodes[n] = struct{}{}
	}
	for _, n := range rec.Behind {
		if _, ok := m.nodes[n]; ok {
			m.behind[n] = struct{}{}
		} else {
			m.changed[n] = struct{}{} // deleted meanwhile: dropped at the next save
		}
	}
	m.rec.Behind = nil
	acts, err := m.resume(now)
	if err != nil {
		return nil, nil, err
	}
	return m, acts, nil
}

// resume reconciles the record with the keyring after a restart. The
// server writes the record before the keyring at every step, so the
// keyring is at most one step behind the record.
func (m *Machine) resume(now time.Time) ([]Action, error) {
	var acts []Action
	// A distribution resumed now waits for every node not known to be
	// behind (those the distribution was sent to, and those that caught
	// up since) to reconnect, until the deadline: nobody is connected yet,
	// and activating at once would leave sisters that have not reconnected
	// unable to read the new key for a while. (The record does not name
	// them: at 10,000 nodes that list would be most of every save.)
	var expect []proto.NodeID
	for n := range m.nodes {
		if _, behind := m.behind[n]; !behind {
			expect = append(expect, n)
		}
	}
	next := m.ring.Next()
	active := m.ring.Active()
	switch m.rec.Phase {
	case Idle:
		// A next key without a rotation, or previous keys left over: no
		// node was told to use them. Drop them.
		r := m.ring
		for _, k := range r.Keys() {
			if k.State != keys.StateActive {
				var err error
				if r, err = r.Retire(k.ID); err != nil {
					return nil, fmt.Errorf("restore rotation: %w", err)
				}
			}
		}
		if r != m.ring {
			m.ring = r
			acts = append(acts, SaveRing{Ring: r, step: StepRepair})
		}
		if len(m.rec.Queued) > 0 {
			more, err := m.distribute(strings.Join(m.rec.Queued, "; "), m.params.Manual, now, true, expect)
			return append(acts, more...), err
		}
		return acts, nil
	case Distributing:
		switch {
		case active.ID == m.rec.New:
			// The keyring was activated: finish the activation.
			return m.activate(now)
		case next != nil && next.ID == m.rec.New && len(m.rec.Queued) > 0:
			// A request arrived during the distribution (a node deleted
			// now may hold the new key): distribute a fresh one.
			return m.distribute(joinReason(m.rec.Reason, strings.Join(m.rec.Queued, "; ")), m.params.Manual, now, true, expect)
		case next != nil && next.ID == m.rec.New:
			m.deadline = now.Add(m.params.Timeout)
			for _, n := range expect {
				m.wait[n] = wPending
				m.pending++
			}
			return m.maybeActivate(now)
		default:
			// The new key never reached the keyring (crash between the
			// record and the keyring): nobody has it. Start over.
			return m.distribute(m.rec.Reason, m.rec.Manual, now, false, expect)
		}
	case Activating:
		if active.ID != m.rec.New && (next == nil || next.ID != m.rec.New) {
			return m.distribute(m.rec.Reason, m.rec.Manual, now, false, expect)
		}
		return m.activate(now)
	case Grace:
		if active.ID != m.rec.New {
			if next == nil || next.ID != m.rec.New {
				return nil, fmt.Errorf("restore rotation: grace for key %s, keyring active %s: %w", m.rec.New, active.ID, ErrInconsistent)
			}
			return m.activate(now)
		}
		return nil, nil
	case Retiring:
		if active.ID != m.rec.New {
			return nil, fmt.Errorf("restore rotation: retiring for key %s, keyring active %s: %w", m.rec.New, active.ID, ErrInconsistent)
		}
		return m.retire(now)
	}
	return nil, nil
}

// SetParams changes the timers for the following events.
func (m *Machine) SetParams(p Params) { m.params = p.withDefaults() }

// Ring returns the keyring as the machine last asked to persist it.
func (m *Machine) Ring() *keys.Keyring { return m.ring }

// Record returns the record as it would be persisted now.
func (m *Machine) Record() Record {
	r := m.rec
	r.Queued = append([]string(nil), m.rec.Queued...)
	r.Behind = sortedIDs(m.behind)
	if len(r.Behind) == 0 {
		r.Behind = nil
	}
	return r
}

// save is the SaveRecord of the current record: the record without its
// Behind list, and the changes to the list since the last save.
func (m *Machine) save(step string) Action {
	r := m.rec
	r.Queued = append([]string(nil), m.rec.Queued...)
	r.Behind = nil
	var ch []BehindChange
	if len(m.changed) > 0 {
		ch = make([]BehindChange, 0, len(m.changed))
		for _, n := range sortedIDs(m.changed) {
			_, behind := m.behind[n]
			ch = append(ch, BehindChange{Node: n, Behind: behind})
		}
		if len(ch) > 1024 {
			m.changed = map[proto.NodeID]struct{}{} // a cleared map keeps its size
		} else {
			clear(m.changed)
		}
	}
	return SaveRecord{Record: r, Changes: ch, Behind: len(m.behind), step: step}
}

// setBehind puts a node into the behind set or takes it out, noting the
// change for the next save.
func (m *Machine) setBehind(n proto.NodeID, behind bool) {
	_, was := m.behind[n]
	if was == behind {
		return
	}
	if behind {
		m.behind[n] = struct{}{}
	} else {
		delete(m.behind, n)
	}
	m.changed[n] = struct{}{}
}

func (m *Machine) connectedIDs() []proto.NodeID { return sortedIDs(m.connected) }

func joinReason(a, b string) string {
	s := b
	if a != "" && b != "" && a != b {
		s = a + "; " + b
	} else if b == "" {
		s = a
	}
	return clip(s)
}

// clip bounds a reason to MaxReasonLen bytes.
func clip(s string) string {
	if len(s) > MaxReasonLen {
		return strings.ToValidUTF8(s[:MaxReasonLen], "")
	}
	return s
}

// Request records a rotation request without starting it: the server
// persists it before the change that needs it (delete node, set node
// Mom=), so a crash between the two cannot lose the rotation. Start
// serves it.
func (m *Machine) Request(reason string) []Action {
	m.queue(reason)
	return []Action{m.save(StepQueued)}
}

// Cancel withdraws a Request whose change failed; it does nothing if the
// request was already served.
func (m *Machine) Cancel(reason string) []Action {
	for i, q := range m.rec.Queued {
		if q == reason {
			m.rec.Queued = append(m.rec.Queued[:i:i], m.rec.Queued[i+1:]...)
			return []Action{m.save(StepQueued)}
		}
	}
	return nil
}

func (m *Machine) queue(reason string) {
	if reason == "" {
		return
	}
	for _, q := range m.rec.Queued {
		if q == reason {
			return
		}
	}
	if len(m.rec.Queued) < MaxQueued {
		m.rec.Queued = append(m.rec.Queued, clip(reason))
	} else {
		m.rec.Queued[MaxQueued-1] = joinReason(m.rec.Queued[MaxQueued-1], reason)
	}
}

// Start requests a rotation (reason may be "" to serve earlier Requests).
// Idle: a new key is generated and distributed. Distributing: the key
// being distributed will not be activated (a node deleted now may already
// hold it); after Params.Debounce without a newer request the
// distribution starts over with a fresh key. Later phases: the request is
// queued and starts when the current rotation ends. With Params.Manual
// no KeyUpdate is sent: an administrator exports, installs and activates
// the key.
func (m *Machine) Start(reason string, now time.Time) ([]Action, error) {
	m.queue(reason)
	if len(m.rec.Queued) == 0 {
		return nil, nil
	}
	switch m.rec.Phase {
	case Idle:
		return m.distribute(strings.Join(m.rec.Queued, "; "), m.params.Manual, now, true, nil)
	case Distributing:
		m.restartAt = now.Add(m.params.Debounce)
	}
	if reason == "" {
		return nil, nil
	}
	return []Action{m.save(StepQueued)}, nil
}

// restart starts the distribution over with a fresh key for the queued
// requests, waiting for the nodes the abandoned one waited for.
func (m *Machine) restart(now time.Time) ([]Action, error) {
	m.restartAt = time.Time{}
	expect := make([]proto.NodeID, 0, len(m.wait))
	for n := range m.wait {
		expect = append(expect, n)
	}
	return m.distribute(joinReason(m.rec.Reason, strings.Join(m.rec.Queued, "; ")), m.params.Manual, now, true, expect)
}

// distribute generates a key and begins distributing it; it serves every
// queued request. Any next key in the keyring (an abandoned rotation) is
// dropped first; if newSeq, the rotation gets a new sequence number. It
// waits for the connected nodes and for the nodes in expect.
func (m *Machine) distribute(reason string, manual bool, now time.Time, newSeq bool, expect []proto.NodeID) ([]Action, error) {
	active := m.ring.Active()
	ring := m.ring
	var abandoned keys.KeyID
	if n := ring.Next(); n != nil {
		abandoned = n.ID
		var err error
		if ring, err = ring.Retire(n.ID); err != nil {
			return nil, fmt.Errorf("drop abandoned key %s: %w", n.ID, err)
		}
	}
	k, err := keys.NewKey(m.rnd, now, func(id keys.KeyID) bool { return m.ring.Lookup(id) != nil })
	if err != nil {
		return nil, err
	}
	if ring, err = ring.AddNext(k); err != nil {
		return nil, fmt.Errorf("add key %s: %w", k.ID, err)
	}
	seq := m.rec.Seq
	if newSeq || seq == 0 {
		seq++
	}
	m.rec = Record{Phase: Distributing, Seq: seq, Reason: clip(reason), Manual: manual, Old: active.ID, New: k.ID,
		Started: now.UTC()}
	m.deadline = now.Add(m.params.Timeout)
	m.restartAt = time.Time{}
	m.wait = make(map[proto.NodeID]waitState, len(m.connected))
	m.pending = 0
	expected := make(map[proto.NodeID]struct{}, len(expect))
	for _, n := range expect {
		expected[n] = struct{}{}
	}
	for n := range m.nodes {
		_, up := m.connected[n]
		if _, ok := expected[n]; ok || up {
			m.wait[n] = wPending
			m.pending++
		} else {
			m.setBehind(n, true)
		}
	}
	acts := []Action{m.save(StepDistributing)}
	m.ring = ring
	acts = append(acts, SaveRing{Ring: ring, step: StepNextSaved})
	to := m.connectedIDs()
	if abandoned != 0 && len(to) > 0 {
		acts = append(acts, SendRetire{Seq: seq, Key: abandoned, To: to})
	}
	if !manual && len(to) > 0 {
		k := *ring.Next()
		acts = append(acts, SendUpdate{Seq: seq, Key: &k, To: to})
	}
	more, err := m.maybeActivate(now)
	return append(acts, more...), err
}

// maybeActivate activates when automatic distribution has heard from
// every node it waits for.
func (m *Machine) maybeActivate(now time.Time) ([]Action, error) {
	if m.rec.Phase != Distributing || m.rec.Manual || m.pending > 0 || len(m.rec.Queued) > 0 {
		return nil, nil
	}
	return m.activate(now)
}

// activate makes the new key active: record the decision, activate the
// keyring, record the grace period, tell the connected nodes.
func (m *Machine) activate(now time.Time) ([]Action, error) {
	m.rec.Phase = Activating
	for n, st := range m.wait {
		m.setBehind(n, st != wAcked)
	}
	m.wait = map[proto.NodeID]waitState{}
	m.pending = 0
	acts := []Action{m.save(StepActivating)}
	ring, err := m.ring.Activate(m.rec.New)
	if err != nil {
		return acts, fmt.Errorf("activate key %s: %w", m.rec.New, err)
	}
	m.ring = ring
	acts = append(acts, SaveRing{Ring: ring, step: StepActivated})
	m.rec.Phase = Grace
	m.rec.GraceUntil = now.Add(m.params.Grace).UTC()
	acts = append(acts, m.save(StepGrace))
	if to := m.connectedIDs(); len(to) > 0 {
		acts = append(acts, SendActivate{Seq: m.rec.Seq, Key: m.rec.New, To: to})
	}
	return acts, nil
}

// retire drops the old key: record the decision, retire it in the keyring,
// tell the connected nodes, record idle, then start a queued request.
func (m *Machine) retire(now time.Time) ([]Action, error) {
	m.rec.Phase = Retiring
	acts := []Action{m.save(StepRetiring)}
	ring := m.ring
	for _, k := range ring.Keys() {
		if k.State == keys.StatePrevious || k.State == keys.StateNext {
			var err error
			if ring, err = ring.Retire(k.ID); err != nil {
				return acts, fmt.Errorf("retire key %s: %w", k.ID, err)
			}
		}
	}
	m.ring = ring
	acts = append(acts, SaveRing{Ring: ring, step: StepRetired})
	if to := m.connectedIDs(); len(to) > 0 {
		acts = append(acts, SendRetire{Seq: m.rec.Seq, Key: m.rec.Old, To: to})
	}
	m.rec.Phase = Idle
	m.rec.GraceUntil = time.Time{}
	if len(m.rec.Queued) > 0 {
		more, err := m.distribute(strings.Join(m.rec.Queued, "; "), m.params.Manual, now, true, nil)
		return append(acts, more...), err
	}
	return append(acts, m.save(StepIdle)), nil
}

// Tick advances the clock: automatic distribution activates at its
// deadline, the grace period ends in retirement.
func (m *Machine) Tick(now time.Time) ([]Action, error) {
	switch m.rec.Phase {
	case Distributing:
		if len(m.rec.Queued) > 0 {
			if !now.Before(m.restartAt) {
				return m.restart(now)
			}
			return nil, nil
		}
		if !m.rec.Manual && !now.Before(m.deadline) {
			return m.activate(now)
		}
	case Grace:
		if !now.Before(m.rec.GraceUntil) {
			return m.retire(now)
		}
	}
	return nil, nil
}

// Activate is an administrator's `activate key ID`: in manual distribution
// it ends the distributing phase; in automatic distribution it stops
// waiting for acknowledgements. Activating the key that is already active
// succeeds and does nothing.
func (m *Machine) Activate(id keys.KeyID, now time.Time) ([]Action, error) {
	if m.rec.Phase == Distributing && id == m.rec.New && len(m.rec.Queued) > 0 {
		return nil, fmt.Errorf("key %s: %w: a newer request (%s) replaces it with a fresh key; activate that one",
			id, ErrNotNext, strings.Join(m.rec.Queued, "; "))
	}
	if m.rec.Phase == Distributing && id == m.rec.New {
		return m.activate(now)
	}
	if a := m.ring.Active(); a != nil && a.ID == id {
		return nil, nil
	}
	if m.rec.Phase == Distributing {
		return nil, fmt.Errorf("key %s: %w (rotation %d distributes %s)", id, ErrNotNext, m.rec.Seq, m.rec.New)
	}
	return nil, fmt.Errorf("key %s: %w (no rotation is distributing a key; start one with rotate key)", id, ErrNotNext)
}

// Ack is a node's KeyAck. seq 0 (a key imported by hand) matches any
// rotation; ok false means the node could not store the key.
func (m *Machine) Ack(node proto.NodeID, seq uint64, id keys.KeyID, ok bool, now time.Time) ([]Action, error) {
	if m.rec.Phase != Distributing || id != m.rec.New || (seq != 0 && seq != m.rec.Seq) {
		return nil, nil
	}
	if _, known := m.nodes[node]; !known {
		return nil, nil
	}
	st := wAcked
	if !ok {
		st = wFailed
	}
	m.setWait(node, st)
	return m.maybeActivate(now)
}

func (m *Machine) setWait(node proto.NodeID, st waitState) {
	if m.wait[node] == wPending {
		m.pending--
	}
	m.wait[node] = st
}

// Connected reports that a node completed its handshake holding the keys
// held, active being the one it seals with: what the Welcome gave it (a
// manual-distribution Welcome gives only keys the node already held). If
// the keyring moved on while the Welcome was on its way, the machine sends
// the node what it missed. A node that holds every key the server holds is
// in sync; in the distributing phase, one that holds the new key has
// acknowledged it.
func (m *Machine) Connected(node proto.NodeID, held []keys.KeyID, active keys.KeyID, now time.Time) ([]Action, error) {
	m.nodes[node] = struct{}{}
	m.connected[node] = struct{}{}
	has := func(id keys.KeyID) bool {
		for _, h := range held {
			if h == id {
				return true
			}
		}
		return false
	}
	to := []proto.NodeID{node}
	var acts []Action
	synced := true
	for _, h := range held {
		if m.ring.Lookup(h) == nil {
			// Retired since the Welcome was built.
			acts = append(acts, SendRetire{Seq: m.rec.Seq, Key: h, To: to})
		}
	}
	if cur := m.ring.Active().ID; active != cur {
		if has(cur) {
			acts = append(acts, SendActivate{Seq: m.rec.Seq, Key: cur, To: to})
		} else {
			synced = false
		}
	}
	if m.rec.Phase == Distributing {
		switch {
		case has(m.rec.New):
			m.setWait(node, wAcked)
		case !m.rec.Manual:
			// The Welcome predates the new key: send it.
			if m.wait[node] != wPending {
				m.wait[node] = wPending
				m.pending++
			}
			k := *m.ring.Next()
			acts = append(acts, SendUpdate{Seq: m.rec.Seq, Key: &k, To: to})
		default:
			synced = false
		}
	}
	for _, k := range m.ring.Keys() {
		if k.State != keys.StateNext && !has(k.ID) {
			synced = false
		}
	}
	if _, behind := m.behind[node]; synced && behind {
		// It caught up: record that (rare: only nodes that missed a step).
		m.setBehind(node, false)
		if m.rec.Phase != Distributing {
			acts = append(acts, m.save(StepBehind))
		}
	}
	more, err := m.maybeActivate(now)
	return append(acts, more...), err
}

// Disconnected reports that a node's control connection ended. In the
// distributing phase the machine stops waiting for it: it catches up when
// it reconnects.
func (m *Machine) Disconnected(node proto.NodeID, now time.Time) ([]Action, error) {
	delete(m.connected, node)
	if m.rec.Phase == Distributing && m.wait[node] == wPending {
		m.setWait(node, wMissed)
		return m.maybeActivate(now)
	}
	return nil, nil
}

// NodeAdded reports a new node (create node).
func (m *Machine) NodeAdded(node proto.NodeID) { m.nodes[node] = struct{}{} }

// NodeRemoved reports a deleted node; the machine forgets it. The caller
// starts the rotation that revokes it.
func (m *Machine) NodeRemoved(node proto.NodeID, now time.Time) ([]Action, error) {
	if m.wait[node] == wPending {
		m.pending--
	}
	delete(m.wait, node)
	delete(m.nodes, node)
	delete(m.connected, node)
	m.setBehind(node, false)
	return m.maybeActivate(now)
}

// NodeState is a node's key state for list key: NodeCurrent, NodeAcked,
// NodePending or NodeNeedsSync.
func (m *Machine) NodeState(node proto.NodeID) string {
	if m.rec.Phase == Distributing {
		switch m.wait[node] {
		case wAcked:
			return NodeAcked
		case wPending:
			return NodePending
		}
		return NodeNeedsSync
	}
	if _, ok := m.behind[node]; ok {
		return NodeNeedsSync
	}
	return NodeCurrent
}

// Info summarises the machine for list key.
type Info struct {
	Phase      Phase
	Seq        uint64
	Reason     string
	Manual     bool
	Old, New   keys.KeyID
	Started    time.Time
	Deadline   time.Time // distributing, automatic only
	GraceUntil time.Time
	Waiting    int // distributing: nodes waited for
	Acked      int // distributing: nodes holding the new key
	Pending    int // distributing: nodes not yet answered
	Behind     int // nodes that missed a step
	Queued     int
}

// Info returns the current summary.
func (m *Machine) Info() Info {
	in := Info{Phase: m.rec.Phase, Seq: m.rec.Seq, Reason: m.rec.Reason, Manual: m.rec.Manual,
		Old: m.rec.Old, New: m.rec.New, Started: m.rec.Started, GraceUntil: m.rec.GraceUntil,
		Pending: m.pending, Behind: len(m.behind), Queued: len(m.rec.Queued)}
	if m.rec.Phase == Distributing {
		if !m.rec.Manual {
			in.Deadline = m.deadline
		}
		for _, st := range m.wait {
			if st != 0 {
				in.Waiting++
			}
			if st == wAcked {
				in.Acked++
			}
		}
	}
	return in
}
