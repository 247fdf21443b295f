package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/rotation"
)

// rotationFile holds the rotation record (rotation.Record) in the server's
// state directory; keyring.json holds the keys.
const rotationFile = "rotation.json"

// DefaultKeyTimeout is how long automatic distribution waits for every
// connected MOM to acknowledge a new key before activating it anyway.
const DefaultKeyTimeout = 30 * time.Second

// rotationTick is how often the rotor checks the distribution deadline and
// the end of the grace period.
const rotationTick = 100 * time.Millisecond

// sendWorkers bounds the connections a broadcast writes to at once.
const sendWorkers = 32

// rotor is the server's shell around rotation.Machine: it feeds the
// machine events one at a time, executes its actions in order (persisting
// synchronously, sending through the dispatcher), and keeps the per-node
// wrappers. Lock order: rotor.mu before Server.mu.
type rotor struct {
	s   *Server
	log logrus.FieldLogger

	mu    sync.Mutex // serialises events and guards m, store, broken and lastTry
	m     *rotation.Machine
	store *rotStore // rotation.json and rotation.journal, or the group's records
	// broken is set when a save failed: the machine may be ahead of the
	// disk, so it is not used again until resync has rebuilt it from disk.
	broken  error
	lastTry time.Time

	wmu      sync.Mutex
	wrappers map[proto.NodeID]*keys.Wrapper

	qmu  sync.Mutex
	jobs []sendJob
	wake chan struct{}

	stats rotStats
}

// rotStats counts rotation traffic (the benchmark reports them).
type rotStats struct {
	framesOut, bytesOut atomic.Int64 // KeyUpdate, KeyActivate, KeyRetire written
	framesIn, bytesIn   atomic.Int64 // KeyAck read
	dropped             atomic.Int64 // sends to a node no longer connected
}

// sendJob is one broadcast; jobs run one after another, so every MOM sees
// a rotation's messages in order.
type sendJob struct {
	typ proto.Type
	seq uint64
	key *keys.Key  // KeyUpdate: private copy, zeroed after the job
	id  keys.KeyID // KeyActivate, KeyRetire
	to  []proto.NodeID
}

// loadRotation reads rotation.json; a missing file is an idle machine that
// never rotated.
func loadRotation(path string) (rotation.Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rotation.Record{}, nil
	}
	if err != nil {
		return rotation.Record{}, fmt.Errorf("load rotation state: %w", err)
	}
	rec, err := rotation.DecodeRecord(data)
	if err != nil {
		return rotation.Record{}, fmt.Errorf("load rotation state %s: %w", path, err)
	}
	return rec, nil
}

// newRotor restores the rotation from the state directory and finishes an
// interrupted step. It runs before the server listens.
func newRotor(s *Server) (*rotor, error) {
	r := &rotor{s: s, log: s.log.WithField("component", "rotation"), wrappers: map[proto.NodeID]*keys.Wrapper{},
		wake: make(chan struct{}, 1)}
	if err := r.restore(); err != nil {
		r.store.close()
		return nil, err
	}
	return r, nil
}

// loadStore opens the rotation's files: at the first restore as the
// start inspected them (their loss recovered, their damage refused), after
// a failed save as read again now (any finding refused).
func (r *rotor) loadStore() (rotation.Record, error) {
	dir := r.s.cfg.StateDir
	var js *store.JournalState
	lost := false
	if r.store == nil {
		st := r.s.base.State
		js = st.In.RotationJournal
		// Missing, inconsistent with its journal, or damaged (not a
		// rotation record, checkRotationFile): the verdict recovers
		// with a new rotation, so the record is not read.
		var err error
		if lost, err = rotationLost(js, st.Lost(rotationFile)); err != nil {
			return rotation.Record{}, err
		}
	} else {
		if err := r.store.close(); err != nil {
			r.log.WithError(err).Warn("close rotation journal")
		}
		r.store = nil
		var err error
		js, err = store.ReadStateJournal(filepath.Join(dir, rotationJournalFile),
			store.JournalOptions{Snapshot: filepath.Join(dir, rotationFile), Expect: true})
		if err != nil {
			return rotation.Record{}, err
		}
		if len(js.Findings) > 0 {
			f := js.Findings[0]
			return rotation.Record{}, fmt.Errorf("reload key rotation: %s: %s (%s)", f.File, f.Problem, f.Detail)
		}
	}
	rs, rec, err := openRotStore(dir, js, lost, r.s.cfg.Replicate)
	if err != nil {
		return rec, err
	}
	r.store = rs
	return rec, nil
}

func (r *rotor) restore() error {
	rec, err := r.loadStore()
	if err != nil {
		return err
	}
	ring, err := keystore.LoadKeyring(filepath.Join(r.s.cfg.StateDir, keyringFile))
	if err != nil {
		return err
	}
	r.s.ring.Store(ring)
	r.s.mu.Lock()
	var nodes []proto.NodeID
	for id, n := range r.s.reg.byID {
		if n.enrolled() {
			nodes = append(nodes, id)
		}
	}
	r.s.mu.Unlock()
	m, acts, err := rotation.Restore(r.s.cfg.Rand, r.params(), rec, ring, nodes, r.s.cfg.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(r.s.cfg.StateDir, rotationFile), err)
	}
	r.m = m
	if (rec.Phase != rotation.Idle && rec.Phase != "") || len(acts) > 0 {
		r.log.WithFields(logrus.Fields{"phase": rec.Phase, "rotation": rec.Seq, "new_key": rec.New.String()}).Info("resuming key rotation")
	}
	return r.exec(acts)
}

// params reads the live attributes. The caller holds r.mu (not s.mu).
func (r *rotor) params() rotation.Params {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	timeout := r.s.cfg.KeyTimeout
	if timeout <= 0 {
		timeout = DefaultKeyTimeout
	}
	return rotation.Params{Grace: time.Duration(r.s.reg.attrs.KeyGrace), Timeout: timeout,
		Manual: r.s.reg.attrs.KeyDistribution == "manual"}
}

// event runs one machine event under r.mu and executes its actions.
func (r *rotor) event(f func(m *rotation.Machine, now time.Time) ([]rotation.Action, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eventLocked(f)
}

func (r *rotor) eventLocked(f func(m *rotation.Machine, now time.Time) ([]rotation.Action, error)) error {
	if err := r.usable(false); err != nil {
		return err
	}
	r.m.SetParams(r.params())
	acts, err := f(r.m, r.s.cfg.Now())
	if xerr := r.exec(acts); xerr != nil {
		return xerr
	}
	return err
}

// exec executes actions in order. Saves are synchronous and atomic; sends
// are queued for the dispatcher. If a save fails, the remaining actions
// are dropped and the rotor is marked broken (see usable).
func (r *rotor) exec(acts []rotation.Action) error {
	for _, a := range acts {
		var err error
		switch a := a.(type) {
		case rotation.SaveRecord:
			err = r.store.save(a)
			if err == nil && a.Step() != rotation.StepBehind && a.Step() != rotation.StepQueued {
				r.logRecord(a)
			}
			if err == nil && a.Step() == rotation.StepIdle && r.s.rot != nil {
				r.s.rotationIdle() // rotation complete, none queued
			}
		case rotation.SaveRing:
			if err = r.s.saveKeyring(a.Ring); err == nil {
				r.s.ring.Store(a.Ring)
			}
		case rotation.SendUpdate:
			r.enqueue(sendJob{typ: proto.TypeKeyUpdate, seq: a.Seq, key: a.Key, to: a.To})
		case rotation.SendActivate:
			r.enqueue(sendJob{typ: proto.TypeKeyActivate, seq: a.Seq, id: a.Key, to: a.To})
		case rotation.SendRetire:
			r.enqueue(sendJob{typ: proto.TypeKeyRetire, seq: a.Seq, id: a.Key, to: a.To})
		default:
			err = fmt.Errorf("unknown rotation action %T", a)
		}
		if err != nil {
			err = fmt.Errorf("key rotation step %s: %w", a.Step(), err)
			r.log.WithError(err).Error("persisting a key rotation step failed: key rotation halted until its state can be reloaded from disk")
			r.broken = err
			return err
		}
		r.s.cfg.CrashAt(a.Step())
	}
	return nil
}

func (r *rotor) logRecord(a rotation.SaveRecord) {
	rec := a.Record
	f := logrus.Fields{"rotation": rec.Seq, "phase": rec.Phase, "new_key": rec.New.String(), "old_key": rec.Old.String()}
	switch a.Step() {
	case rotation.StepDistributing:
		f["reason"] = rec.Reason
		f["needs_sync"] = a.Behind
		if rec.Manual {
			r.log.WithFields(f).Warn("key rotation: new key generated; manual distribution: export it, import it on every node, then activate it")
			return
		}
		r.log.WithFields(f).Info("key rotation: distributing new key")
	case rotation.StepGrace:
		f["grace_until"] = rec.GraceUntil
		f["behind"] = a.Behind
		r.log.WithFields(f).Info("key rotation: new key active, old key accepted until the grace period ends")
	case rotation.StepIdle:
		r.log.WithFields(f).Info("key rotation: old key retired and zeroed; rotation complete")
	default:
		r.log.WithFields(f).Debug("key rotation step")
	}
}

// usable is checked before every event. After a failed save the machine
// may be ahead of the disk: it is rebuilt from disk, and every MOM
// connection is closed so that each MOM resynchronises by its Welcome.
// Until that succeeds events are refused. Administrator requests (force)
// retry at once; other events at most once per second.
func (r *rotor) usable(force bool) error {
	if r.broken == nil {
		return nil
	}
	now := time.Now()
	if !force && now.Sub(r.lastTry) < time.Second {
		return fmt.Errorf("key rotation halted: %w", r.broken)
	}
	r.lastTry = now
	failed := r.broken
	r.broken = nil
	if err := r.restore(); err != nil {
		if r.broken == nil {
			r.broken = err
		}
		return fmt.Errorf("key rotation halted (%v); reloading it from disk: %w", failed, err)
	}
	r.s.mu.Lock()
	for _, c := range r.s.conns {
		c.conn.Close()
	}
	r.s.mu.Unlock()
	r.log.Warn("key rotation reloaded from disk after a failed save; MOMs reconnect to resynchronise")
	return nil
}

func (r *rotor) enqueue(j sendJob) {
	if len(j.to) == 0 {
		if j.key != nil {
			j.key.Zero()
		}
		return
	}
	r.qmu.Lock()
	r.jobs = append(r.jobs, j)
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run is the dispatcher and the clock, until ctx ends.
func (r *rotor) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(rotationTick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := r.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) { return m.Tick(now) }); err != nil {
				r.log.WithError(err).Error("key rotation")
			}
		}
	}()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			r.qmu.Lock()
			jobs := r.jobs
			r.jobs = nil
			r.qmu.Unlock()
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				r.send(j)
			}
		}
	}
}

// wrapper returns the cached box precomputation for a node: wrapping a
// key for it, or opening its Hello, then costs no X25519 operation. One
// made for another identity key of the node is made again.
func (r *rotor) wrapper(id proto.NodeID, pub *[32]byte) *keys.Wrapper {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	w := r.wrappers[id]
	if w == nil || !w.For(pub) {
		w = keys.NewWrapper(pub, &r.s.ident.Private)
		r.wrappers[id] = w
	}
	return w
}

func (r *rotor) forgetWrapper(id proto.NodeID) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	delete(r.wrappers, id)
}

// send writes one job to its nodes, several connections at a time. A
// connection whose write fails is closed: the MOM reconnects and catches
// up by its Welcome.
func (r *rotor) send(j sendJob) {
	defer func() {
		if j.key != nil {
			j.key.Zero()
		}
	}()
	conns := make([]*session, len(j.to))
	r.s.mu.Lock()
	for i, id := range j.to {
		conns[i] = r.s.conns[id]
	}
	r.s.mu.Unlock()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(sendWorkers, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c := conns[i]
				if !keyed(c) {
					r.stats.dropped.Add(1)
					continue
				}
				msg, err := r.message(j, c)
				if err == nil {
					err = c.send(msg)
				}
				if err != nil {
					r.log.WithError(err).WithField("node", c.node.rec.Name).Warn("key rotation: send failed; closing the connection so the MOM resynchronises")
					c.conn.Close()
					continue
				}
				r.stats.framesOut.Add(1)
				r.stats.bytesOut.Add(int64(frameSize(msg)))
			}
		}()
	}
	wg.Wait()
}

func frameSize(m proto.Message) int {
	switch m.(type) {
	case *proto.KeyUpdate:
		return proto.HeaderSize + 8 + proto.WrappedKeySize
	case *proto.KeyActivate, *proto.KeyRetire:
		return proto.HeaderSize + 12
	}
	return proto.HeaderSize + len(m.AppendBody(nil))
}

func (r *rotor) message(j sendJob, c *session) (proto.Message, error) {
	switch j.typ {
	case proto.TypeKeyUpdate:
		wk, err := r.wrapper(c.node.id, &c.node.pub).Wrap(r.s.cfg.Rand, j.key, keys.StateNext)
		if err != nil {
			return nil, err
		}
		return &proto.KeyUpdate{Rotation: j.seq, Key: handshake.ToWire(wk)}, nil
	case proto.TypeKeyActivate:
		return &proto.KeyActivate{Rotation: j.seq, KeyID: uint32(j.id)}, nil
	case proto.TypeKeyRetire:
		return &proto.KeyRetire{Rotation: j.seq, KeyID: uint32(j.id)}, nil
	}
	return nil, fmt.Errorf("unknown job type %s", j.typ)
}

// connected reports an authenticated MOM, registered in s.conns, holding
// what its Welcome gave it. The MOM first gets the whole deny list, then
// whatever it missed of a rotation.
func (r *rotor) connected(mc *session) {
	if !keyed(mc) {
		return // a legacy (v1) session holds no cluster key
	}
	if ds := r.s.denySet(); ds != nil {
		if err := mc.send(ds); err != nil {
			r.log.WithError(err).WithField("node", mc.node.rec.Name).Debug("send deny list")
		}
	}
	err := r.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		r.s.mu.Lock()
		current := r.s.conns[mc.node.id] == mc
		r.s.mu.Unlock()
		if !current {
			return nil, nil // already replaced or gone
		}
		return m.Connected(mc.node.id, mc.held, mc.active, now)
	})
	if err != nil {
		r.log.WithError(err).Error("key rotation")
	}
}

// disconnected reports that a MOM's connection ended.
func (r *rotor) disconnected(mc *session) {
	err := r.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		r.s.mu.Lock()
		current := r.s.conns[mc.node.id]
		r.s.mu.Unlock()
		if keyed(current) {
			return nil, nil // it reconnected meanwhile
		}
		return m.Disconnected(mc.node.id, now)
	})
	if err != nil {
		r.log.WithError(err).Error("key rotation")
	}
}

// ack handles a MOM's KeyAck.
func (r *rotor) ack(mc *session, a *proto.KeyAck, size int) {
	r.stats.framesIn.Add(1)
	r.stats.bytesIn.Add(int64(size))
	if a.Status != 0 {
		r.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "key": keys.KeyID(a.KeyID).String()}).Warn("MOM could not store the new key")
	}
	err := r.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		return m.Ack(mc.node.id, a.Rotation, keys.KeyID(a.KeyID), a.Status == 0, now)
	})
	if err != nil {
		r.log.WithError(err).Error("key rotation")
	}
}

// nodeAdded tells the machine about a node created by create node.
func (r *rotor) nodeAdded(id proto.NodeID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m.NodeAdded(id)
}

// changeAndRotate runs a registry change that needs a rotation (delete
// node, set node Mom=): the request is persisted first, then change runs,
// then the rotation starts, all under r.mu, so a crash between any two
// steps still rotates. change returns the nodes it removed and whether a
// rotation is needed after all.
func (r *rotor) changeAndRotate(reason string, change func() ([]proto.NodeID, bool, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(true); err != nil {
		return err
	}
	r.m.SetParams(r.params())
	if err := r.exec(r.m.Request(reason)); err != nil {
		return fmt.Errorf("persist rotation request: %w", err)
	}
	removed, rotate, err := change()
	if err != nil || !rotate {
		if xerr := r.exec(r.m.Cancel(reason)); xerr != nil {
			r.log.WithError(xerr).Error("withdraw rotation request")
		}
		return err
	}
	for _, id := range removed {
		r.forgetWrapper(id)
		if xerr := r.eventLocked(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
			return m.NodeRemoved(id, now)
		}); xerr != nil {
			return fmt.Errorf("%s done, but the key rotation failed: %w", reason, xerr)
		}
	}
	// The reason again: if a restart served the request before the change,
	// this queues a rotation that follows it.
	if xerr := r.eventLocked(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		return m.Start(reason, now)
	}); xerr != nil {
		return fmt.Errorf("%s done, but the key rotation failed: %w", reason, xerr)
	}
	return nil
}

// rotate is `rotate key`.
func (r *rotor) rotate(reason string) (*admin.RotationInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(true); err != nil {
		return nil, err
	}
	err := r.eventLocked(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		return m.Start(reason, now)
	})
	if err != nil {
		return nil, fmt.Errorf("start key rotation: %w", err)
	}
	info := r.infoLocked()
	return &info, nil
}

// activate is `activate key ID`.
func (r *rotor) activate(id keys.KeyID) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(true); err != nil {
		return err
	}
	err := r.eventLocked(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		return m.Activate(id, now)
	})
	if errors.Is(err, rotation.ErrNotNext) {
		return admin.Errorf(admin.CodeConflict, "activate key %s: %v", id, err)
	}
	return err
}

func (r *rotor) info() admin.RotationInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.usable(false)
	return r.infoLocked()
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (r *rotor) infoLocked() admin.RotationInfo {
	in := r.m.Info()
	out := admin.RotationInfo{
		Phase: string(in.Phase), Seq: in.Seq, Reason: in.Reason, Distribution: "auto",
		Started: optTime(in.Started), Deadline: optTime(in.Deadline), GraceUntil: optTime(in.GraceUntil),
		Waiting: in.Waiting, Acked: in.Acked, Pending: in.Pending, Behind: in.Behind, Queued: in.Queued,
	}
	if in.Manual {
		out.Distribution = "manual"
	}
	if in.Seq > 0 {
		out.OldKey, out.NewKey = in.Old.String(), in.New.String()
	}
	switch in.Phase {
	case rotation.Distributing:
		switch {
		case in.Queued > 0:
			out.Next = fmt.Sprintf("key %s will not be activated: a newer request replaces it with a fresh key within %s", in.New, rotation.DefaultDebounce)
		case in.Manual:
			out.Next = fmt.Sprintf("export key %s, import it on every node (momgate-mom key import), then activate key %s", in.New, in.New)
		default:
			out.Next = fmt.Sprintf("key %s becomes active when %d more node(s) acknowledge it, or at the deadline", in.New, in.Pending)
		}
	case rotation.Grace:
		out.Next = fmt.Sprintf("key %s is retired everywhere when the grace period ends", in.Old)
		if in.Queued > 0 {
			out.Next += fmt.Sprintf("; then %d queued request(s) start a new rotation", in.Queued)
		}
	}
	if r.broken != nil {
		out.Error = fmt.Sprintf("key rotation halted, persisting a step failed: %v; the server retries reading its state from disk", r.broken)
	}
	return out
}

// nodeStates returns each node's key state (rotation.Node*), for list key
// and list node.
func (r *rotor) nodeStates(ids []proto.NodeID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = r.m.NodeState(id)
	}
	return out
}

// record is the rotation record as the machine holds it.
func (r *rotor) record() rotation.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m.Record()
}

// persistWhole writes the whole record as persisted (a first start's
// rotation.json; in a group, the record committed whole).
func (r *rotor) persistWhole(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.commitWhole(why)
}

// persisted is the whole record as persisted.
func (r *rotor) persisted() rotation.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.record()
}

func (r *rotor) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.close()
}

// distributing returns the key being distributed, if a rotation is in
// that phase.
func (r *rotor) distributing() (keys.KeyID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.m.Info()
	return in.New, in.Phase == rotation.Distributing
}

// distributingManually returns the key being distributed, if a rotation
// with manual distribution is in that phase.
func (r *rotor) distributingManually() (keys.KeyID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.m.Info()
	return in.New, in.Phase == rotation.Distributing && in.Manual
}

// rotationPhases are the values of the rotation_phase metric: the
// machine's phases, and "halted" after a save failed (see usable).
var rotationPhases = []string{string(rotation.Idle), string(rotation.Distributing), string(rotation.Activating),
	string(rotation.Grace), string(rotation.Retiring), "halted"}

// phase is the current rotation phase, for the metrics.
func (r *rotor) phase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken != nil {
		return "halted"
	}
	if r.m == nil {
		return string(rotation.Idle)
	}
	if p := r.m.Record().Phase; p != "" {
		return string(p)
	}
	return string(rotation.Idle)
}
