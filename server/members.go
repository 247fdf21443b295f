package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/member"
)

// Refusals of set server NAME standby=true|false, for callers that branch.
var (
	// ErrDemoteLeader: the leader is asked to demote itself.
	ErrDemoteLeader = errors.New("the leader does not demote itself")
	// ErrLastVoter: the member is the group's only voter.
	ErrLastVoter = errors.New("the group's only voter")
	// ErrNotInSync: a standby to promote is down or behind the leader.
	ErrNotInSync = errors.New("not alive and in sync")
)

// memberState is member name's state as the leader sees it ("unknown"
// if it is not listed).
func (g *groupRunner) memberState(name string) string {
	for _, mi := range g.groupInfo().Members {
		if mi.Name == name {
			return mi.State
		}
	}
	return "unknown"
}

// setMember is set server NAME standby=true|false on the leader: the
// member's record (Standby) is committed through the group first, while
// this member surely leads, then the raft configuration follows (a voter
// demoted to a non-voter, or a non-voter promoted). Each step is skipped
// when already done, so running it again finishes a change cut short. A
// member created but not joined yet has only its record changed: join
// adds it as the record then says. The leader does not demote itself,
// the only voter is never demoted, and a standby is promoted only while
// it is alive and in sync.
func (g *groupRunner) setMember(a admin.SetMemberArgs) (*admin.MemberInfo, error) {
	if g.srv.Load() == nil {
		return nil, g.notLeaderErr()
	}
	standby := *a.Standby
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	rec, ok := g.state.member(a.Name)
	if !ok {
		return nil, admin.Errorf(admin.CodeBadValue, "unknown member %s (list server shows the members)", a.Name)
	}
	addr, voter, inConf := g.m.Server(a.Name)
	if standby && a.Name == g.gc.Member {
		if g.m.OtherVoters() == 0 {
			return nil, admin.Errorf(admin.CodeConflict, "%s: %v: a group cannot demote its last voter "+
				"(set server NAME standby=false promotes a standby; create server adds a member)", a.Name, ErrLastVoter)
		}
		return nil, admin.Errorf(admin.CodeConflict, "%s leads the group and %v: make another voter lead first "+
			"(stop this daemon and the other voters elect one; start it again), then run set server %s standby=true on the new leader; "+
			"or delete server %s here to take it out of the group", a.Name, ErrDemoteLeader, a.Name, a.Name)
	}
	if !standby && inConf && !voter {
		// raft counts a voter in the quorum as soon as the change commits:
		// a voter that cannot answer yet would stall every write.
		if st := g.memberState(a.Name); st != "alive" {
			return nil, admin.Errorf(admin.CodeConflict, "%s is %s: %v; promote it once list server shows it alive "+
				"(a voter that cannot answer counts in the quorum at once)", a.Name, st, ErrNotInSync)
		}
	}
	if rec.Standby != standby {
		rec.Standby = standby
		if err := g.commitMember(rec); err != nil {
			return nil, err
		}
	}
	if inConf && voter == standby {
		if addr == "" {
			addr = rec.Raft
		}
		ctx, cancel := context.WithTimeout(context.Background(), g.gc.CommitTimeout)
		defer cancel()
		var err error
		if standby {
			err = g.m.AddStandby(ctx, a.Name, addr)
		} else {
			err = g.m.AddVoter(ctx, a.Name, addr)
		}
		if err != nil {
			return nil, fmt.Errorf("%s is on record as standby=%t but the raft configuration change was not confirmed (%w): "+
				"run set server %s standby=%t again on the leader", a.Name, standby, err, a.Name, standby)
		}
	}
	g.log.WithField("changed_member", a.Name).WithField("standby", standby).WithField("joined", inConf).Info("member's role changed")
	out := &admin.MemberInfo{Name: rec.Name, Address: rec.Control, Replication: rec.Raft, Role: string(member.RoleFollower)}
	if standby {
		out.Role = string(member.RoleStandby)
	}
	if !inConf {
		out.State = "not joined"
	}
	for _, mi := range g.groupInfo().Members {
		if mi.Name == a.Name {
			out.Role, out.State, out.Behind, out.LastContact = mi.Role, mi.State, mi.Behind, mi.LastContact
		}
	}
	return out, nil
}
