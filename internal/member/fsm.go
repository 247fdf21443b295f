package member

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/replica"
)

// ErrHalted means this member met a log entry it cannot decode (a newer
// member wrote it, or it is damaged) and stopped applying: its state is
// frozen at the entry before, rather than forked from the group's.
var ErrHalted = errors.New("member halted: a replicated command it cannot apply")

// fsm adapts a replica.StateMachine to raft.FSM: it decodes each committed
// command and applies it, and halts at the first it cannot decode.
type fsm struct {
	sm  replica.StateMachine
	log logrus.FieldLogger

	mu     sync.Mutex
	halted error
}

func (f *fsm) haltErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

// Apply implements raft.FSM; it returns a replica.Result.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return replica.Result{}
	}
	if err := f.haltErr(); err != nil {
		return replica.Result{Err: err}
	}
	e, err := replica.Decode(l.Data)
	if err != nil {
		err = fmt.Errorf("%w: entry %d: %w", ErrHalted, l.Index, err)
		f.mu.Lock()
		f.halted = err
		f.mu.Unlock()
		f.log.WithError(err).Error("replicated state halted: upgrade this member, or rejoin it from a snapshot")
		return replica.Result{Err: err}
	}
	return f.sm.Apply(l.Index, e)
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.haltErr(); err != nil {
		return nil, err // a frozen state is not offered to others
	}
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot the replicated state: %w", err)
	}
	return fsmSnapshot{s}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.sm.Restore(rc); err != nil {
		return fmt.Errorf("restore the replicated state from a snapshot: %w", err)
	}
	return nil
}

type fsmSnapshot struct{ s replica.Snapshot }

// Persist writes the snapshot into raft's sink.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s fsmSnapshot) Release() { s.s.Release() }
