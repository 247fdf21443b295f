package member

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/momgate/momgate/replica"
)

// Errors of Apply. Callers branch on them: ErrNotLeader and ErrBusy mean
// nothing was proposed (retry, here or on the leader); ErrOutcomeUnknown
// means the command may yet commit (read the state back before retrying).
var (
	ErrNotLeader      = errors.New("this member does not lead the group")
	ErrBusy           = errors.New("the leader did not take the command in time")
	ErrOutcomeUnknown = errors.New("command proposed but its outcome is unknown (leadership lost or timed out)")
)

// NotLeaderError is ErrNotLeader with the leader this member knows of.
type NotLeaderError struct {
	Leader     string // member name; "" when no leader is known (no quorum, or an election)
	LeaderAddr string // its replication address
}

// Error says who leads.
func (e *NotLeaderError) Error() string {
	if e.Leader == "" {
		return ErrNotLeader.Error() + "; no leader is known (an election, or no quorum)"
	}
	return fmt.Sprintf("%s; %s at %s leads", ErrNotLeader, e.Leader, e.LeaderAddr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) hold.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

func (m *Member) notLeader() error {
	addr, id := m.raft.LeaderWithID()
	return &NotLeaderError{Leader: string(id), LeaderAddr: string(addr)}
}

// Apply proposes cmd, stamped with this member's clock, and returns its
// result once a quorum has committed it and this member has applied it.
// Only the leader proposes; a follower answers a *NotLeaderError naming
// the leader. result.Err is the state's own refusal (for the server's
// state, a record that does not decode): the command was committed and
// refused alike on every member.
func (m *Member) Apply(ctx context.Context, cmd replica.Command) (replica.Result, error) {
	if err := m.fsm.haltErr(); err != nil {
		return replica.Result{}, err
	}
	if m.raft.State() != raft.Leader {
		return replica.Result{}, m.notLeader()
	}
	data, err := replica.Encode(replica.Entry{At: m.cfg.Now(), Cmd: cmd})
	if err != nil {
		return replica.Result{}, err
	}
	f := m.raft.Apply(data, timeoutOf(ctx))
	if err := m.wait(ctx, f); err != nil {
		return replica.Result{}, fmt.Errorf("%s: %w", cmd.Op(), err)
	}
	res, ok := f.Response().(replica.Result)
	if !ok {
		return replica.Result{}, fmt.Errorf("%s: state machine returned %T", cmd.Op(), f.Response())
	}
	return res, nil
}

// wait waits for a raft future, or for ctx, and maps raft's errors to ours.
func (m *Member) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // raft resolves every future, at the latest at Shutdown
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader):
		return m.notLeader()
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ErrClosed)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}
