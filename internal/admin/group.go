package admin

import "time"

// Operations and codes of a server group (docs/HA.md).
const (
	OpCreateServer = "create_server" // CreateServerArgs -> CreateServerResult
	OpDeleteServer = "delete_server" // ServerArgs -> MemberInfo (the removed member)

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
