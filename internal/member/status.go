package member

import (
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/momgate/momgate/internal/raftnet"
)

// Role is a member's part in the group.
type Role string

// Roles of list server.
const (
	RoleLeader   Role = "leader"
	RoleFollower Role = "follower"
	RoleStandby  Role = "standby"
)

// Health is whether a member answers.
type Health string

// Health values; HealthUnknown on a follower, which does not hear from
// the other followers (ask the leader).
const (
	HealthAlive   Health = "alive"
	HealthDown    Health = "down"
	HealthUnknown Health = "unknown"
)

// MemberStatus is one row of list server.
type MemberStatus struct {
	Name   string
	Addr   string
	Role   Role
	Health Health
	// NeedsSync: the member's log is behind the leader's, or a snapshot
	// is being sent to it; Behind is by how many entries.
	NeedsSync bool
	Behind    uint64
	// LastContact is when the leader last heard from it (for the leader
	// itself: now); zero when never or unknown.
	LastContact time.Time
}

// State is the column text: "alive", "needs sync (N behind)", "down",
// "down, needs sync (N behind)", "unknown".
func (s MemberStatus) State() string {
	switch {
	case s.Health == HealthAlive && s.NeedsSync:
		return fmt.Sprintf("needs sync (%d behind)", s.Behind)
	case s.Health == HealthDown && s.Behind > 0:
		return fmt.Sprintf("down, needs sync (%d behind)", s.Behind)
	}
	return string(s.Health)
}

// Status is the group as this member sees it.
type Status struct {
	Self       string
	Leader     string // "" when none is known
	LeaderAddr string
	Term       uint64
	LastIndex  uint64
	Applied    uint64
	// LeaderChanges counts the leaders this member has seen take over
	// (a metric: leadership changes).
	LeaderChanges uint64
	// Campaigns counts the elections this member started (a standby
	// never starts one).
	Campaigns uint64
	// Halted is why this member stopped applying, or "".
	Halted  string
	Members []MemberStatus
}

// peerStatus derives a peer's health and lag from what the leader last
// heard from it.
func peerStatus(p raftnet.PeerContact, known bool, lastIndex uint64, now time.Time, downAfter time.Duration) (Health, bool, uint64, time.Time) {
	if !known || p.LastContact.IsZero() {
		return HealthDown, lastIndex > 0, lastIndex, time.Time{}
	}
	health := HealthAlive
	if now.Sub(p.LastContact) > downAfter {
		health = HealthDown
	}
	var behind uint64
	if p.LastLog < lastIndex {
		behind = lastIndex - p.LastLog
	}
	return health, behind > 0 || p.Snapshot, behind, p.LastContact
}

// Status reports the group: on the leader with every member's health and
// lag, on a follower with the roles and the leader only.
func (m *Member) Status() (Status, error) {
	fut := m.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return Status{}, fmt.Errorf("read the group configuration: %w", err)
	}
	addr, id := m.raft.LeaderWithID()
	st := Status{Self: m.cfg.Name, Leader: string(id), LeaderAddr: string(addr), Term: m.raft.CurrentTerm(),
		LastIndex: m.raft.LastIndex(), Applied: m.raft.AppliedIndex(), LeaderChanges: m.leaderChanges.Load(),
		Campaigns: m.campaigns.Load()}
	if err := m.fsm.haltErr(); err != nil {
		st.Halted = err.Error()
	}
	leading := m.raft.State() == raft.Leader
	now := m.cfg.Now()
	peers := m.trans.Peers()
	for _, s := range fut.Configuration().Servers {
		ms := MemberStatus{Name: string(s.ID), Addr: string(s.Address), Role: RoleFollower, Health: HealthUnknown}
		switch {
		case s.Suffrage == raft.Nonvoter:
			ms.Role = RoleStandby
		case s.ID == id:
			ms.Role = RoleLeader
		}
		switch {
		case s.ID == raft.ServerID(m.cfg.Name):
			ms.Health, ms.LastContact = HealthAlive, now
			if !leading {
				// What this follower knows: its own lag is unknown to it,
				// its last contact is the leader's.
				ms.LastContact = m.raft.LastContact()
			}
		case leading:
			p, ok := peers[s.ID]
			ms.Health, ms.NeedsSync, ms.Behind, ms.LastContact = peerStatus(p, ok, st.LastIndex, now, m.cfg.DownAfter)
		case s.ID == id:
			ms.Health, ms.LastContact = HealthAlive, m.raft.LastContact()
		}
		st.Members = append(st.Members, ms)
	}
	sort.Slice(st.Members, func(i, j int) bool { return st.Members[i].Name < st.Members[j].Name })
	return st, nil
}
