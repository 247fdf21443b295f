package pbsauth

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// Defaults of Config.
const (
	DefaultTTL        = 30 * time.Second
	DefaultMaxPending = 1 << 14
	DefaultMaxSeen    = 1 << 16
)

// Directory is what a responder's daemon knows about the nodes of the
// cluster. Implementations must be safe for concurrent use.
type Directory interface {
	// Admit decides about a host that proved node id and address under
	// cluster key keyID, and returns the node's name ("" if the daemon
	// does not know it), or an error wrapping ErrUnknownNode,
	// ping.ErrAddrMismatch or ping.ErrRevoked.
	Admit(node proto.NodeID, addr proto.Addr, keyID uint32) (string, error)
}

// Self is what this daemon seals with.
type Self struct {
	Sealer *ping.Sealer // this node's PINGs (its Node is this node's id)
	Name   string       // this node's name
}

// Config configures an Engine. Keys, Self, Addr, Directory are required.
type Config struct {
	Keys ping.KeySource
	// Self returns the sealer and name, or nil while the daemon is not
	// enrolled.
	Self      func() *Self
	Addr      proto.Addr // this host's address, the one its PINGs name
	Directory Directory
	Now       func() time.Time // nil: time.Now
	Rand      io.Reader        // required: random bytes, ids and nonces
	// Freshness bounds |timestamp - now| of a step 1 or 2 PING; 0
	// disables the check.
	Freshness time.Duration
	// TTL is how long a handshake may take; 0 means DefaultTTL.
	TTL time.Duration
	// MaxPending bounds the handshakes in progress; 0: DefaultMaxPending.
	MaxPending int
	// MaxSeen bounds the step 1 PINGs remembered for replay; 0:
	// DefaultMaxSeen.
	MaxSeen int
	// ServiceUsers are the users a service connection may be vouched
	// for, as PBS_AUTH_SERVICE_USERS; nil: root alone. PBS checks them
	// too, except after a handshake that encrypts and authenticates at
	// once (docs/OPENPBS.md section 6.5): this daemon checks every one.
	ServiceUsers []string
}

// Caller is the local process that asked, as the kernel says
// (SO_PEERCRED), with its user and group names.
type Caller struct {
	UID, GID    uint32
	User, Group string
}

// Result is what one step learned, filled as far as it got (also on
// refusal), for the audit log.
type Result struct {
	ID       HandshakeID
	Token    []byte
	Peer     proto.Addr   // the other host's address
	Node     proto.NodeID // the other host's node id, once known
	NodeName string       // its name, once known
	KeyID    uint32       // the cluster key the other side sealed with
	Kind     Kind         // the kind of connection
	User     PeerUser     // Confirm: the initiator's user
	// Keys are the connection's record keys, as the caller's side uses
	// them (Continue, Confirm of an encrypted handshake; nil otherwise).
	Keys *ConnKeys
}

// Engine runs both sides of the handshake of docs/OPENPBS.md section 2 for
// one daemon. It is safe for concurrent use.
type Engine struct {
	cfg Config

	mu      sync.Mutex
	pending *expiring[HandshakeID, pending]
	seen    *expiring[[ping.RandomSize]byte, struct{}]

	epochOnce sync.Once // Check's generations (checkEpoch)
	epoch     uint64
	epochErr  error
}

// pending is a handshake between its steps.
type pending struct {
	uid       uint32 // the caller that started it; only it may go on
	initiator bool
	kind      Kind
	caller    Caller                // initiator: who step 3 vouches for
	peer      proto.Addr            // the other host's address
	random    [ping.RandomSize]byte // what the other side must echo
	node      proto.NodeID          // responder: the initiator's node
	keyID     uint32
	eph       *ephemeral  // initiator of an encrypted handshake: its key pair and share
	sent      ping.Result // initiator of an encrypted handshake: its SessionPing
	keys      *ConnKeys   // responder of an encrypted handshake: the keys, for Confirm
}

// NewEngine returns an Engine for cfg.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Keys == nil || cfg.Self == nil || cfg.Directory == nil || cfg.Rand == nil {
		return nil, errors.New("pbsauth engine: Keys, Self, Directory and Rand are required")
	}
	if cfg.Addr == (proto.Addr{}) {
		return nil, errors.New("pbsauth engine: this host's address is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.MaxSeen <= 0 {
		cfg.MaxSeen = DefaultMaxSeen
	}
	if cfg.ServiceUsers == nil {
		cfg.ServiceUsers = []string{"root"}
	}
	seenTTL := cfg.Freshness
	if seenTTL <= 0 {
		seenTTL = ping.DefaultFreshness
	}
	return &Engine{
		cfg:     cfg,
		pending: newExpiring[HandshakeID, pending](cfg.TTL, cfg.MaxPending),
		seen:    newExpiring[[ping.RandomSize]byte, struct{}](seenTTL, cfg.MaxSeen),
	}, nil
}

func (e *Engine) self() (*Self, error) {
	s := e.cfg.Self()
	if s == nil || s.Sealer == nil {
		return nil, ErrNotEnrolled
	}
	return s, nil
}

func (e *Engine) newID() (HandshakeID, error) {
	var id HandshakeID
	if _, err := io.ReadFull(e.cfg.Rand, id[:]); err != nil {
		return id, fmt.Errorf("%w: handshake id: %v", ErrInternal, err)
	}
	return id, nil
}

func (e *Engine) park(p pending) (HandshakeID, error) {
	id, err := e.newID()
	if err != nil {
		return id, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending.add(e.cfg.Now(), id, p)
	return id, nil
}

// resume takes the handshake id of caller c, for the initiator or the
// responder side.
func (e *Engine) resume(c Caller, id HandshakeID, initiator bool) (pending, error) {
	e.mu.Lock()
	p, ok := e.pending.take(e.cfg.Now(), id)
	e.mu.Unlock()
	if !ok || p.uid != c.UID || p.initiator != initiator {
		return pending{}, ErrNoHandshake
	}
	return p, nil
}

// Initiate makes step 1 for a connection of kind to the host at dest, on
// behalf of caller c. With encrypt, step 1 offers the connection's
// encryption (a SessionPing, docs/OPENPBS.md section 6), and Continue
// returns its keys.
func (e *Engine) Initiate(c Caller, kind Kind, dest proto.Addr, encrypt bool) (Result, error) {
	res := Result{Peer: dest, Kind: kind}
	if !kind.valid() {
		return res, fmt.Errorf("%w: kind %d", ErrMalformed, kind)
	}
	self, err := e.self()
	if err != nil {
		return res, err
	}
	p := pending{uid: c.UID, initiator: true, kind: kind, caller: c, peer: dest}
	var frame []byte
	if encrypt {
		eph, err := newEphemeral(e.cfg.Rand)
		if err != nil {
			return res, err
		}
		ext := encodeOffer(&eph)
		frame, err = self.Sealer.PingExt(make([]byte, 0, ping.ExtFrameSize), e.cfg.Addr, dest, &ext, &p.sent)
		if err != nil {
			eph.wipe()
			return res, fmt.Errorf("%w: seal session ping: %v", ErrInternal, err)
		}
		p.eph, p.random = &eph, p.sent.Random
	} else if frame, p.random, err = self.Sealer.Ping(make([]byte, 0, ping.FrameSize), e.cfg.Addr, dest); err != nil {
		return res, fmt.Errorf("%w: seal ping: %v", ErrInternal, err)
	}
	res.ID, err = e.park(p)
	res.Token = WrapFrame(StepPing, frame)
	return res, err
}

// Continue checks step 2 of handshake id and makes step 3: the vouch for
// the caller that started it.
func (e *Engine) Continue(c Caller, id HandshakeID, token []byte) (Result, error) {
	p, err := e.resume(c, id, true)
	if err != nil {
		return Result{}, err
	}
	if p.eph != nil {
		defer p.eph.wipe()
	}
	res := Result{Peer: p.peer, Kind: p.kind}
	frame, sealed, err := UnwrapFrame(StepReply, token)
	if err != nil {
		return res, err
	}
	if sealed != (p.eph != nil) {
		return res, fmt.Errorf("%w: %s", ErrMalformed, formMismatch(p.eph != nil))
	}
	var pr ping.Result
	var ext session.Ext
	if err := e.check(frame, true, sealed, []proto.Addr{p.peer}, &p.random, &pr, &ext); err != nil {
		res.Node, res.KeyID = pr.Node, pr.KeyID
		return res, err
	}
	res.Node, res.KeyID = pr.Node, pr.KeyID
	if res.NodeName, err = e.cfg.Directory.Admit(pr.Node, pr.Sender, pr.KeyID); err != nil {
		return res, err
	}
	self, err := e.self()
	if err != nil {
		return res, err
	}
	if sealed {
		share, pub, err := decodeExt(&ext, true)
		if err != nil {
			return res, err
		}
		keys, err := deriveKeys(&sealedSide{initiator: true, t: transcriptOf(&p.sent, &pr, &p.eph.pub, &pub),
			own: p.eph, peerShare: share, peerPub: pub})
		if err != nil {
			return res, err
		}
		res.Keys = &keys
	}
	v := Vouch{Echo: pr.Random, Node: self.Sealer.Node, Kind: p.kind, UID: p.caller.UID, GID: p.caller.GID,
		User: p.caller.User, Group: p.caller.Group, NodeName: self.Name}
	keyID, aead := e.cfg.Keys.Seal()
	if aead == nil {
		return res, ErrNotEnrolled
	}
	var nonce [ping.NonceSize]byte
	if _, err := io.ReadFull(e.cfg.Rand, nonce[:]); err != nil {
		return res, fmt.Errorf("%w: vouch nonce: %v", ErrInternal, err)
	}
	if res.Token, err = SealVouch(&v, keyID, aead, &nonce); err != nil {
		return res, fmt.Errorf("%w: %v", ErrInternal, err)
	}
	return res, nil
}

// Accept checks step 1, which came from one of sources, for a connection
// of kind, and makes step 2.
func (e *Engine) Accept(c Caller, kind Kind, sources []proto.Addr, token []byte) (Result, error) {
	res := Result{Kind: kind}
	if len(sources) > 0 {
		res.Peer = sources[0]
	}
	if !kind.valid() {
		return res, fmt.Errorf("%w: kind %d", ErrMalformed, kind)
	}
	frame, sealed, err := UnwrapFrame(StepPing, token)
	if err != nil {
		return res, err
	}
	var pr ping.Result
	var ext session.Ext
	err = e.check(frame, false, sealed, sources, nil, &pr, &ext)
	res.Node, res.KeyID = pr.Node, pr.KeyID
	if pr.Sender != (proto.Addr{}) && !errors.Is(err, ping.ErrAddrMismatch) {
		res.Peer = pr.Sender
	}
	if err != nil {
		return res, err
	}
	var peerShare, peerPub [32]byte
	if sealed {
		if peerShare, peerPub, err = decodeExt(&ext, false); err != nil {
			return res, err
		}
	}
	e.mu.Lock()
	replayed := e.seen.add(e.cfg.Now(), pr.Random, struct{}{})
	e.mu.Unlock()
	if replayed {
		return res, fmt.Errorf("%w: this ping was answered before", ErrReplay)
	}
	if res.NodeName, err = e.cfg.Directory.Admit(pr.Node, pr.Sender, pr.KeyID); err != nil {
		return res, err
	}
	self, err := e.self()
	if err != nil {
		return res, err
	}
	keyID, aead := e.cfg.Keys.Seal()
	if aead == nil {
		return res, ErrNotEnrolled
	}
	reply := ping.Payload{Sender: e.cfg.Addr, Dest: pr.Sender, Node: self.Sealer.Node, Echo: pr.Random}
	var nonce [ping.NonceSize]byte
	if err := e.random(reply.Random[:], nonce[:]); err != nil {
		return res, err
	}
	if reply.Timestamp, err = self.Sealer.Stamper.Next(); err != nil {
		return res, fmt.Errorf("%w: timestamp: %v", ErrInternal, err)
	}
	p := pending{uid: c.UID, kind: kind, peer: pr.Sender, random: reply.Random, node: pr.Node, keyID: pr.KeyID}
	if sealed {
		eph, err := newEphemeral(e.cfg.Rand)
		if err != nil {
			return res, err
		}
		ans := encodeAnswer(&eph)
		frame = ping.SealPayloadExt(make([]byte, 0, ping.ExtReplyFrameSize), true, keyID, aead, &nonce, &reply, &ans)
		sent := ping.Result{Payload: reply, KeyID: keyID, Reply: true}
		keys, err := deriveKeys(&sealedSide{t: transcriptOf(&pr, &sent, &peerPub, &eph.pub), own: &eph,
			peerShare: peerShare, peerPub: peerPub})
		if err != nil {
			return res, err
		}
		p.keys = &keys
	} else {
		frame = ping.SealPayload(make([]byte, 0, ping.ReplyFrameSize), true, keyID, aead, &nonce, &reply)
	}
	res.ID, err = e.park(p)
	res.Token = WrapFrame(StepReply, frame)
	return res, err
}

// formMismatch says what is wrong with a step 2 of the other form than the
// step 1 it answers.
func formMismatch(encrypted bool) string {
	if encrypted {
		return "a plain reply to a handshake that asked for encryption (is the peer's momgate daemon older?)"
	}
	return "an encrypted reply to a handshake that did not ask for encryption"
}

func (e *Engine) random(bufs ...[]byte) error {
	for _, b := range bufs {
		if _, err := io.ReadFull(e.cfg.Rand, b); err != nil {
			return fmt.Errorf("%w: random bytes: %v", ErrInternal, err)
		}
	}
	return nil
}

// Confirm checks step 3 of handshake id and says who the initiator is.
func (e *Engine) Confirm(c Caller, id HandshakeID, token []byte) (Result, error) {
	p, err := e.resume(c, id, false)
	if err != nil {
		return Result{}, err
	}
	res, err := e.confirm(&p, token)
	if err != nil && p.keys != nil {
		p.keys.Wipe() // a refused connection gets no keys
	}
	return res, err
}

func (e *Engine) confirm(p *pending, token []byte) (Result, error) {
	res := Result{Peer: p.peer, Node: p.node, Kind: p.kind}
	v, keyID, err := OpenVouch(token, e.cfg.Keys)
	res.KeyID = keyID
	if err != nil {
		return res, err
	}
	if subtle.ConstantTimeCompare(v.Echo[:], p.random[:]) != 1 {
		return res, fmt.Errorf("%w: the vouch echoes another handshake's challenge", ErrReplay)
	}
	if v.Node != p.node {
		return res, ErrNodeMismatch
	}
	if v.Kind != p.kind {
		return res, fmt.Errorf("%w: vouch for a %s connection, this is a %s connection", ErrKind, v.Kind, p.kind)
	}
	if v.Kind == KindService && !slices.Contains(e.cfg.ServiceUsers, v.User) {
		return res, fmt.Errorf("%w: a service connection of %s (uid %d), who is not a service user (%s)", ErrKind,
			v.User, v.UID, strings.Join(e.cfg.ServiceUsers, ","))
	}
	// Asked again: the node may have been deleted since step 1.
	if res.NodeName, err = e.cfg.Directory.Admit(p.node, p.peer, keyID); err != nil {
		return res, err
	}
	if res.NodeName == "" {
		res.NodeName = v.NodeName
	}
	res.User = PeerUser{UID: v.UID, GID: v.GID, User: v.User, Group: v.Group, NodeName: res.NodeName}
	res.Keys = p.keys
	return res, nil
}

// check runs the checks of docs/OPENPBS.md section 2.1 on a step 1 (reply
// false) or step 2 frame, plain or (sealed) of the session form whose
// extension goes to ext: docs/PROTOCOL.md 3.2 checks 1 to 7 and the
// freshness window, without high-water marks.
func (e *Engine) check(frame []byte, reply, sealed bool, sources []proto.Addr, echo *[ping.RandomSize]byte, res *ping.Result, ext *session.Ext) error {
	var keyID uint32
	var isReply bool
	var err error
	if sealed {
		keyID, isReply, err = ping.OpenExt(frame, e.cfg.Keys, &res.Payload, ext)
	} else {
		keyID, isReply, err = ping.Open(frame, e.cfg.Keys, &res.Payload)
	}
	res.KeyID, res.Reply = keyID, isReply
	if err != nil {
		return err
	}
	if isReply != reply {
		return fmt.Errorf("%w: a ping of the other kind", ping.ErrMalformed)
	}
	from := false
	for _, s := range sources {
		from = from || s == res.Sender
	}
	if !from {
		return fmt.Errorf("%w: the ping names %s, the connection is from %s", ping.ErrAddrMismatch, res.Sender, addrList(sources))
	}
	if res.Dest != e.cfg.Addr {
		return fmt.Errorf("%w: the ping is for %s, this host is %s", ping.ErrWrongDest, res.Dest, e.cfg.Addr)
	}
	if echo != nil && subtle.ConstantTimeCompare(res.Echo[:], echo[:]) != 1 {
		return ping.ErrEcho
	}
	if f := e.cfg.Freshness; f > 0 {
		if res.Timestamp > math.MaxInt64 {
			return fmt.Errorf("%w: timestamp %d", ping.ErrStale, res.Timestamp)
		}
		// Both are ns since the epoch below 2^63: the difference fits.
		d := time.Duration(int64(res.Timestamp) - e.cfg.Now().UnixNano())
		if d > f || d < -f {
			return fmt.Errorf("%w: timestamp %s from now", ping.ErrStale, d)
		}
	}
	return nil
}

func addrList(as []proto.Addr) string {
	var b bytes.Buffer
	for i, a := range as {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString(a.String())
	}
	if len(as) == 0 {
		return "an unknown address"
	}
	return b.String()
}

// Checker is a Directory that can also say whether a connection it
// admitted earlier is admitted still (the Check op, docs/PROTOCOL.md
// section 7). Implementations must be safe for concurrent use.
type Checker interface {
	// Generation changes whenever an answer of Still may have changed
	// (a node deleted, denied or readdressed). It is read before Still.
	Generation() uint64
	// Still returns nil if the node named name is admitted at addr now,
	// or an error wrapping ErrUnknownNode, ping.ErrAddrMismatch or
	// ping.ErrRevoked.
	Still(name string, addr proto.Addr) error
}

// CheckResult is what a Check found.
type CheckResult struct {
	Gen     uint64
	Verdict Verdict
	// Err is why a revoked connection is revoked (nil otherwise).
	Err error
}

// Check says whether the open connection of node name from addr, last
// found admitted at generation gen (0: never), is admitted still. When
// gen is the current generation nothing is looked up (VerdictUnchanged).
// The error is for a daemon that cannot check at all (its directory is not
// a Checker); a revoked connection is a verdict, not an error.
func (e *Engine) Check(gen uint64, name string, addr proto.Addr) (CheckResult, error) {
	ck, ok := e.cfg.Directory.(Checker)
	if !ok {
		return CheckResult{}, fmt.Errorf("%w: this daemon cannot check open connections", ErrInternal)
	}
	epoch, err := e.checkEpoch()
	if err != nil {
		return CheckResult{}, err
	}
	// Read before Still: a change while Still runs makes the next Check
	// look again.
	now := epoch + ck.Generation()
	if now == 0 {
		now = 1 // 0 means "no answer yet"
	}
	if gen != 0 && gen == now {
		return CheckResult{Gen: now, Verdict: VerdictUnchanged}, nil
	}
	if err := ck.Still(name, addr); err != nil {
		return CheckResult{Gen: now, Verdict: VerdictRevoked, Err: err}, nil
	}
	return CheckResult{Gen: now, Verdict: VerdictValid}, nil
}

// checkEpoch is a random offset of this engine's generations, drawn at the
// first Check: a daemon that restarted (its count from 0 again) never
// answers a generation of its previous run as unchanged.
func (e *Engine) checkEpoch() (uint64, error) {
	e.epochOnce.Do(func() {
		var b [8]byte
		if _, err := io.ReadFull(e.cfg.Rand, b[:]); err != nil {
			e.epochErr = fmt.Errorf("%w: check epoch: %v", ErrInternal, err)
			return
		}
		e.epoch = binary.BigEndian.Uint64(b[:])
	})
	return e.epoch, e.epochErr
}
