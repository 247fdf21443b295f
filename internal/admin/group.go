package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// Operations and codes of a server group (docs/HA.md).
const (
	OpCreateServer = "create_server" // CreateServerArgs -> CreateServerResult
	OpDeleteServer = "delete_server" // ServerArgs -> MemberInfo (the removed member)
	OpSetMember    = "set_member"    // SetMemberArgs -> MemberInfo (the member after the change)

	// CodeNotLeader: this member does not lead its group; the message names
	// the leader when one is known.
	CodeNotLeader = "not_leader"
)

// GroupInfo is the group as one member sees it (print server, list server).
type GroupInfo struct {
	Member        string       `json:"member"`         // the member that answered
	Leader        string       `json:"leader"`         // "" when none is known
	Term          uint64       `json:"term"`           // raft term
	LastIndex     uint64       `json:"last_index"`     // last entry in this member's log
	Applied       uint64       `json:"applied"`        // last entry applied here
	LeaderChanges uint64       `json:"leader_changes"` // leaders this member has seen take over
	Members       []MemberInfo `json:"members"`
}

// MemberInfo is one row of list server in a group.
type MemberInfo struct {
	Name        string     `json:"name"`
	Address     string     `json:"address"`     // control address for MOMs
	Replication string     `json:"replication"` // replication address
	Role        string     `json:"role"`        // leader, follower or standby
	State       string     `json:"state"`       // alive, needs sync (N behind), down, unknown
	Behind      uint64     `json:"behind"`      // entries behind the leader
	LastContact *time.Time `json:"last_contact,omitempty"`
}

// CreateServerArgs are the arguments of create server.
type CreateServerArgs struct {
	Name    string `json:"name"`
	Address string `json:"address"` // replication address HOST:PORT
	Control string `json:"control"` // control address for MOMs HOST:PORT ("" : the replication host, the leader's control port)
	Standby bool   `json:"standby"`
}

// CreateServerResult is create server's answer: the one-time join token.
type CreateServerResult struct {
	Name         string    `json:"name"`
	Token        string    `json:"token"`
	TokenExpires time.Time `json:"token_expires"`
}

// ServerArgs name one member.
type ServerArgs struct {
	Name string `json:"name"`
}

// SetMemberArgs are the arguments of set server NAME standby=true|false:
// demote voter Name to standby, or promote standby Name to voter. Standby
// is a pointer so that a request without it is refused rather than read
// as a promotion.
type SetMemberArgs struct {
	Name    string `json:"name"`
	Standby *bool  `json:"standby"`
}

// ErrSetMemberArgs: a set_member request's arguments are malformed.
var ErrSetMemberArgs = errors.New("bad set_member arguments")

// DecodeSetMemberArgs decodes set_member's arguments strictly: one JSON
// object with exactly the fields of SetMemberArgs, a non-empty name and
// standby given.
func DecodeSetMemberArgs(raw []byte) (SetMemberArgs, error) {
	var a SetMemberArgs
	if err := strictjson.Decode(raw, &a); err != nil {
		return SetMemberArgs{}, fmt.Errorf("%w: %v", ErrSetMemberArgs, err)
	}
	switch {
	case a.Name == "":
		return SetMemberArgs{}, fmt.Errorf("%w: no member name", ErrSetMemberArgs)
	case a.Standby == nil:
		return SetMemberArgs{}, fmt.Errorf("%w: standby (true or false) is required", ErrSetMemberArgs)
	}
	return a, nil
}
