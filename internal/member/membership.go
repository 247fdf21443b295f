package member

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// AddVoter adds member name at addr as a voter, or promotes a standby.
// The leader replicates to it (from a snapshot if its log was compacted)
// and counts its vote once the configuration change has committed.
func (m *Member) AddVoter(ctx context.Context, name, addr string) error {
	if m.raft.State() != raft.Leader {
		return m.notLeader()
	}
	if err := m.wait(ctx, m.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, timeoutOf(ctx))); err != nil {
		return fmt.Errorf("add voter %s: %w", name, err)
	}
	return nil
}

// AddStandby adds member name at addr as a standby (a raft non-voter: it
// replicates, is counted in no quorum, and never campaigns or leads), or
// demotes a voter to standby.
func (m *Member) AddStandby(ctx context.Context, name, addr string) error {
	if m.raft.State() != raft.Leader {
		return m.notLeader()
	}
	fut := m.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return fmt.Errorf("add standby %s: %w", name, err)
	}
	var f raft.IndexFuture
	if s, ok := find(fut.Configuration(), name); ok && s.Suffrage == raft.Voter {
		f = m.raft.DemoteVoter(raft.ServerID(name), 0, timeoutOf(ctx))
	} else {
		f = m.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(addr), 0, timeoutOf(ctx))
	}
	if err := m.wait(ctx, f); err != nil {
		return fmt.Errorf("add standby %s: %w", name, err)
	}
	return nil
}

// Remove takes member name out of the group. Removing the leader itself
// makes it step down once the change has committed.
func (m *Member) Remove(ctx context.Context, name string) error {
	if m.raft.State() != raft.Leader {
		return m.notLeader()
	}
	if err := m.wait(ctx, m.raft.RemoveServer(raft.ServerID(name), 0, timeoutOf(ctx))); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func find(c raft.Configuration, name string) (raft.Server, bool) {
	for _, s := range c.Servers {
		if s.ID == raft.ServerID(name) {
			return s, true
		}
	}
	return raft.Server{}, false
}

// InConfiguration reports whether name is a server (voter or standby) of
// this member's latest raft configuration, committed or not.
func (m *Member) InConfiguration(name string) bool {
	f := m.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	_, in := find(f.Configuration(), name)
	return in
}

// OtherVoters counts the voters of the latest configuration other than
// this member.
func (m *Member) OtherVoters() int {
	f := m.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != raft.ServerID(m.cfg.Name) {
			n++
		}
	}
	return n
}

// Server reports member name's place in this member's latest raft
// configuration, committed or not: its address, whether it votes, and
// whether it is there at all.
func (m *Member) Server(name string) (addr string, voter, ok bool) {
	f := m.raft.GetConfiguration()
	if f.Error() != nil {
		return "", false, false
	}
	s, ok := find(f.Configuration(), name)
	return string(s.Address), ok && s.Suffrage == raft.Voter, ok
}
