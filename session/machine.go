package session

import (
	"fmt"
	"io"
	"time"
)

// Role is a side's part in the swap that made the session.
type Role uint8

// Roles.
const (
	RoleInitiator Role = 1 // sent the SessionPing
	RoleResponder Role = 2 // answered it
)

// ActionKind says what an Action asks of the record layer.
type ActionKind uint8

// Action kinds, applied in the order a Machine returns them.
const (
	// SendControl: seal Action.Control under the current send key and send
	// it before any record sealed later.
	SendControl ActionKind = iota + 1
	// InstallSend: seal every later record under Action.Key (generation
	// Action.Gen), counters from 0.
	InstallSend
	// InstallRecv: open every record after the current one under
	// Action.Key, counters from 0.
	InstallRecv
	// Close: the session is over; Action.Err says why.
	Close
)

// Action is one step a Machine asks for.
type Action struct {
	Kind    ActionKind
	Control Control       // SendControl
	Gen     uint64        // InstallSend, InstallRecv
	Key     [KeySize]byte // InstallSend, InstallRecv
	Err     error         // Close
}

// Actions is the ordered list of steps an event produced (at most four).
type Actions struct {
	n    int
	list [4]Action
}

// Len returns the number of actions.
func (a *Actions) Len() int { return a.n }

// At returns action i.
func (a *Actions) At(i int) *Action { return &a.list[i] }

func (a *Actions) add(x Action) { a.list[a.n] = x; a.n++ }

// wipe zeroes the keys the actions carried, once applied.
func (a *Actions) wipe() {
	for i := range a.list[:a.n] {
		clear(a.list[i].Key[:])
	}
}

// Machine is the rekey state machine of section 6.6, one per session side.
// It takes events (Check before a record is sealed or opened and on ticks,
// Receive for a control frame) and returns the actions they call for: it
// owns the session secret and decides when keys change and when the session
// must close; it never touches a record. Not safe for concurrent use.
type Machine struct {
	lim  Limits
	role Role
	prot Protection
	rand io.Reader

	gen    uint64        // generation of secret: the oldest keys in use
	secret [KeySize]byte // S(gen), zeroed once S(gen+1) is derived
	born   time.Time     // when S(gen) was derived here
	rekeys uint64
	closed error

	deadline time.Time // next time Check has work
	recLimit uint64    // next record count Check has work at
	rk       rekeyState
}

// rekeyState is the progress of the rekey to generation gen+1.
type rekeyState struct {
	active    bool // our Rekey is sent
	got       bool // the peer's Rekey is received
	derived   bool // S(gen+1) derived, our send direction switched
	started   time.Time
	derivedAt time.Time
	own       ephemeral
	peer      [32]byte
	next      [KeySize]byte // S(gen+1)
	recvKey   [KeySize]byte // installed at the peer's Switch
}

// NewMachine starts the machine of a session whose generation-0 secret is
// s0, derived at now. The actions install the generation-0 keys; s0 is
// zeroed. rnd draws the rekeys' ephemeral keys (Encrypt only).
func NewMachine(role Role, prot Protection, s0 *[KeySize]byte, now time.Time, lim Limits, rnd io.Reader) (*Machine, Actions, error) {
	var acts Actions
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, acts, err
	}
	if (role != RoleInitiator && role != RoleResponder) || (prot != Auth && prot != Encrypt) {
		return nil, acts, fmt.Errorf("session machine: role %d, protection %s", role, prot)
	}
	m := &Machine{lim: lim, role: role, prot: prot, rand: rnd, secret: *s0, born: now}
	clear(s0[:])
	send, recv := m.keys(&m.secret)
	acts.add(Action{Kind: InstallSend, Key: send})
	acts.add(Action{Kind: InstallRecv, Key: recv})
	clear(send[:])
	clear(recv[:])
	m.arm()
	return m, acts, nil
}

// keys returns this side's send and receive keys of a generation.
func (m *Machine) keys(s *[KeySize]byte) (send, recv [KeySize]byte) {
	i2r, r2i := DirectionKeys(s)
	if m.role == RoleInitiator {
		return i2r, r2i
	}
	return r2i, i2r
}

// arm precomputes when Check next has work, so Due is two comparisons.
func (m *Machine) arm() {
	switch {
	case m.closed != nil:
		m.deadline, m.recLimit = time.Time{}, 0
	case m.rk.active:
		m.deadline, m.recLimit = m.born.Add(m.lim.RejectAfterTime), m.lim.RejectAfterRecords
	default:
		m.deadline, m.recLimit = m.born.Add(m.lim.RekeyAfterTime), m.lim.RekeyAfterRecords
	}
}

// Due reports whether Check has work at now, with sent and received the
// counters of the next record in each direction. It is the hot path:
// nothing but comparisons.
func (m *Machine) Due(now time.Time, sent, received uint64) bool {
	return !now.Before(m.deadline) || sent >= m.recLimit || received >= m.recLimit
}

// NextDeadline is when the caller must call Check at the latest (a tick),
// even if no record is sealed or opened.
func (m *Machine) NextDeadline() time.Time { return m.deadline }

// Check applies the age and record limits: it closes a session whose keys
// passed a reject limit and starts a rekey when a rekey limit is reached.
// sent and received are the counters of the next record in each direction.
func (m *Machine) Check(now time.Time, sent, received uint64) Actions {
	var acts Actions
	switch {
	case m.closed != nil:
	case !now.Before(m.born.Add(m.lim.RejectAfterTime)):
		m.fail(fmt.Errorf("generation %d is %s old, limit %s: %w", m.gen, now.Sub(m.born), m.lim.RejectAfterTime, ErrExpired))
	case sent >= m.lim.RejectAfterRecords || received >= m.lim.RejectAfterRecords:
		m.fail(fmt.Errorf("generation %d at records %d sent, %d received, limit %d: %w", m.gen, sent, received, m.lim.RejectAfterRecords, ErrExpired))
	case !m.rk.active && (!now.Before(m.born.Add(m.lim.RekeyAfterTime)) || sent >= m.lim.RekeyAfterRecords || received >= m.lim.RekeyAfterRecords):
		m.start(now, &acts)
	}
	return m.finish(&acts)
}

// Receive handles a control frame from the peer, received at now.
func (m *Machine) Receive(c Control, now time.Time) Actions {
	var acts Actions
	if m.closed != nil {
		return m.finish(&acts)
	}
	switch c.Type {
	case RekeyType:
		switch {
		case c.Gen != m.gen+1:
			m.fail(fmt.Errorf("rekey to generation %d, expected %d: %w", c.Gen, m.gen+1, ErrProtocol))
		case m.rk.got:
			m.fail(fmt.Errorf("second rekey to generation %d: %w", c.Gen, ErrProtocol))
		case (m.prot == Encrypt) == isZero(&c.Ephemeral):
			m.fail(fmt.Errorf("rekey ephemeral key does not match protection %s: %w", m.prot, ErrProtocol))
		default:
			if !m.rk.active {
				m.start(now, &acts)
			}
			m.rk.got, m.rk.peer = true, c.Ephemeral
			if m.closed == nil {
				m.derive(now, &acts)
			}
		}
	case SwitchType:
		if c.Gen != m.gen+1 || !m.rk.derived {
			m.fail(fmt.Errorf("switch to generation %d before the rekey exchange (at generation %d): %w", c.Gen, m.gen, ErrProtocol))
			break
		}
		acts.add(Action{Kind: InstallRecv, Gen: c.Gen, Key: m.rk.recvKey})
		m.gen, m.secret, m.born = c.Gen, m.rk.next, m.rk.derivedAt // copies: rk.wipe erases the originals
		m.rekeys++
		m.rk.wipe()
	default:
		m.fail(fmt.Errorf("control frame type %s: %w", c.Type, ErrProtocol))
	}
	return m.finish(&acts)
}

// start sends this side's Rekey for generation gen+1.
func (m *Machine) start(now time.Time, acts *Actions) {
	m.rk.active, m.rk.started = true, now
	if m.prot == Encrypt {
		e, err := newEphemeral(m.rand)
		if err != nil {
			m.fail(fmt.Errorf("start rekey: %w", err))
			return
		}
		m.rk.own = e
	}
	acts.add(Action{Kind: SendControl, Control: Control{Type: RekeyType, Gen: m.gen + 1, Ephemeral: m.rk.own.pub}})
}

// derive computes S(gen+1) once both Rekeys are known, ends this side's
// send generation with a Switch and installs the new send key.
func (m *Machine) derive(now time.Time, acts *Actions) {
	initEph, respEph := m.rk.own.pub, m.rk.peer
	if m.role == RoleResponder {
		initEph, respEph = respEph, initEph
	}
	var dh *[KeySize]byte
	if m.prot == Encrypt {
		s, err := m.rk.own.shared(&m.rk.peer)
		m.rk.own.zero()
		if err != nil {
			m.fail(fmt.Errorf("rekey: %v: %w", err, ErrProtocol))
			return
		}
		dh = &s
		defer clear(s[:])
	}
	m.rk.next = NextSecret(&m.secret, m.gen+1, &initEph, &respEph, dh)
	clear(m.secret[:])
	send, recv := m.keys(&m.rk.next)
	m.rk.recvKey = recv
	clear(recv[:])
	m.rk.derived, m.rk.derivedAt = true, now
	acts.add(Action{Kind: SendControl, Control: Control{Type: SwitchType, Gen: m.gen + 1}})
	acts.add(Action{Kind: InstallSend, Gen: m.gen + 1, Key: send})
	clear(send[:])
}

func (m *Machine) fail(err error) {
	if m.closed == nil {
		m.closed = err
		clear(m.secret[:])
		m.rk.wipe()
	}
}

// finish appends the Close of a failed machine and re-arms.
func (m *Machine) finish(acts *Actions) Actions {
	if m.closed != nil {
		acts.n = 0
		acts.add(Action{Kind: Close, Err: m.closed})
	}
	m.arm()
	return *acts
}

func (r *rekeyState) wipe() {
	r.own.zero()
	clear(r.next[:])
	clear(r.recvKey[:])
	*r = rekeyState{}
}

// Err returns why the machine closed, or nil.
func (m *Machine) Err() error { return m.closed }

// Generation returns the generation of the oldest keys in use.
func (m *Machine) Generation() uint64 { return m.gen }

// Born returns when the oldest keys in use were derived.
func (m *Machine) Born() time.Time { return m.born }

// Rekeys returns the number of completed rekeys.
func (m *Machine) Rekeys() uint64 { return m.rekeys }

// Rekeying reports whether a rekey is in progress.
func (m *Machine) Rekeying() bool { return m.rk.active }
