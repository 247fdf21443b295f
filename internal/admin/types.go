package admin

import (
	"time"

	"github.com/momgate/momgate/internal/audit"
)

// Operations of the server's admin socket. Each names its argument type
// and its result type (the Data of the response, and the --json output of
// momgate-qmgr).
const (
	OpCreateNode  = "create_node"  // CreateNodeArgs -> CreateNodeResult
	OpDeleteNode  = "delete_node"  // NodeArgs -> NodeInfo (the deleted node)
	OpListNode    = "list_node"    // ListNodeArgs -> []NodeInfo (sorted by name; one entry when Name is set)
	OpSetNode     = "set_node"     // SetArgs -> NodeInfo (the node after the change)
	OpPrintServer = "print_server" // no args -> ServerReport
	OpSetServer   = "set_server"   // SetArgs with Name "" -> ServerInfo (after the change)
	OpUnsetServer = "unset_server" // UnsetArgs -> ServerInfo (the attributes back at their defaults)
	OpListKey     = "list_key"     // no args -> KeyList
	OpRotateKey   = "rotate_key"   // no args -> RotationInfo (after the request)
	OpExportKey   = "export_key"   // KeyArgs{ID, File} -> KeyInfo (the exported key)
	OpActivateKey = "activate_key" // KeyArgs{ID} -> KeyInfo (the activated key)
)

// Node states reported in NodeInfo.State.
const (
	NodeEnrolling = "enrolling" // created, token not yet used
	NodeUp        = "up"        // enrolled and connected
	NodeDown      = "down"      // enrolled, not connected
	// NodeDeleting: a delete node that did not complete (the server died
	// between the deny commit and the registry commit): the node is
	// denied, so refused by the server and every MOM, but still
	// registered. Running delete node NAME again completes it.
	NodeDeleting = "deleting"
)

// NodeInfo describes one node.
type NodeInfo struct {
	Name        string     `json:"name"`        // node name, case-sensitive
	ID          string     `json:"id"`          // node id (UUID)
	Mom         string     `json:"mom"`         // MOM IP address
	Host        string     `json:"host"`        // the host name Mom= gave, resolved to Mom when the directive ran; "" if an address
	Port        int        `json:"port"`        // MOM IM port
	State       string     `json:"state"`       // NodeEnrolling, NodeUp, NodeDown or NodeDeleting
	Protocol    string     `json:"protocol"`    // "v1", "v2" or "" (never seen)
	Versions    string     `json:"versions"`    // versions the MOM advertised: "v1", "v2", "v1,v2" or ""
	Upgraded    bool       `json:"upgraded"`    // no-downgrade mark: legacy admission refused
	KeyID       string     `json:"key_id"`      // cluster key id the node holds, "" if unknown
	KeyState    string     `json:"key_state"`   // "current", "acked", "pending", "needs sync" or ""
	Fingerprint string     `json:"fingerprint"` // fingerprint of the node identity key (SHA256:BASE64), "" before enrollment
	Created     time.Time  `json:"created"`     // when create node ran
	Enrolled    *time.Time `json:"enrolled"`    // when its MOM redeemed the token, null before
	LastSeen    *time.Time `json:"last_seen"`   // last contact, null if never
	// Sealed sessions (docs/PROTOCOL.md 6): the node proved it speaks them
	// (an unsealed session from it is refused); the protection of its
	// control session (none, auth, encrypt; "" when not connected) and the
	// age of that session's keys (of the connection when unsealed).
	Sealed        bool   `json:"sealed"`
	Session       string `json:"session"`
	SessionKeyAge string `json:"session_key_age"`
	// Denied: the node's id is on the deny list while it is still
	// registered, which only an incomplete delete node leaves (State
	// NodeDeleting). Comment says what happened and the command that
	// finishes it; "" for a node without a problem.
	Denied  bool   `json:"denied"`
	Comment string `json:"comment"`
}

// CreateNodeResult is the result of OpCreateNode: the new node and its
// one-time enrollment token.
type CreateNodeResult struct {
	Node         NodeInfo  `json:"node"`
	Token        string    `json:"token"`         // single-use enrollment token for momgate-mom --enroll
	TokenExpires time.Time `json:"token_expires"` // the token is refused after this instant
}

// ServerInfo describes the server.
type ServerInfo struct {
	ID              string            `json:"id"`               // server id (UUID)
	Fingerprint     string            `json:"fingerprint"`      // server identity key fingerprint (pinned by tokens)
	Listen          string            `json:"listen"`           // control listener address
	Mode            string            `json:"mode"`             // legacy, compat or ping
	KeyDistribution string            `json:"key_distribution"` // auto or manual
	ActiveKey       string            `json:"active_key"`       // id of the active cluster key, "" if none
	Nodes           int               `json:"nodes"`            // number of nodes
	Attrs           map[string]string `json:"attrs"`            // every settable attribute and its current value
	Audit           *audit.Snapshot   `json:"audit,omitempty"`  // admission counters: accepted, rejected by reason
	Legacy          *LegacyStats      `json:"legacy,omitempty"` // legacy protocol pushes and refusals
	Group           *GroupInfo        `json:"group,omitempty"`  // the server group, when the server is a member of one
}

// LegacyStats counts what the server pushed for the legacy protocol (v1)
// and what it refused during the migration. Counters start at zero when
// the server starts.
type LegacyStats struct {
	PushMessages    uint64 `json:"push_messages"`    // ClusterAddrs (address list) frames sent
	PushBytes       uint64 `json:"push_bytes"`       // their bytes, headers included
	UpgradeMessages uint64 `json:"upgrade_messages"` // NodeUpgraded frames sent
	UpgradeBytes    uint64 `json:"upgrade_bytes"`    // their bytes
	ModeMessages    uint64 `json:"mode_messages"`    // Mode frames sent
	ListRuns        int    `json:"list_runs"`        // runs of consecutive addresses in the current list
	ListBytes       int    `json:"list_bytes"`       // bytes of one list push
	ListSessions    int    `json:"list_sessions"`    // connected MOMs that get lists in the current mode
	V1Sessions      int    `json:"v1_sessions"`      // connected MOMs speaking v1
	Upgraded        int    `json:"upgraded"`         // nodes marked upgraded
	V1Accepted      uint64 `json:"v1_accepted"`      // legacy hellos accepted
	V1Refused       uint64 `json:"v1_refused"`       // legacy hellos refused in ping mode
	V2Refused       uint64 `json:"v2_refused"`       // PING hellos refused in legacy mode
	Downgrades      uint64 `json:"downgrades"`       // legacy hellos of upgraded nodes refused
	Overflows       uint64 `json:"push_overflows"`   // MOMs disconnected because their push queue was full
	Lookups         uint64 `json:"lookups"`          // node address lookups answered
}

// ServerReport is the result of OpPrintServer: the server and its nodes.
type ServerReport struct {
	Server ServerInfo `json:"server"`
	Nodes  []NodeInfo `json:"nodes"`
}

// KeyInfo describes one cluster key.
type KeyInfo struct {
	ID      string    `json:"id"`      // key id, 8 hex digits
	State   string    `json:"state"`   // next, active, previous or retired
	Created time.Time `json:"created"` // when the key was generated
	// CutOff (activate key ... force) names the nodes that did not hold
	// the key when it was activated: their sisters and the server refuse
	// them until they import it.
	CutOff []string `json:"cut_off,omitempty"`
}

// Node key states (NodeInfo.KeyState, NodeKeyInfo.KeyState).
const (
	KeyCurrent   = "current"    // holds the keys it should
	KeyAcked     = "acked"      // rotation distributing: stored the new key
	KeyPending   = "pending"    // rotation distributing: new key sent, no answer yet
	KeyNeedsSync = "needs sync" // missed a rotation step; catches up when it reconnects
)

// NodeKeyInfo says which cluster key a node holds.
type NodeKeyInfo struct {
	Name     string `json:"name"`
	KeyID    string `json:"key_id"`              // key its last PING was sealed with, "" if unknown
	KeyState string `json:"key_state"`           // KeyCurrent, KeyAcked, KeyPending, KeyNeedsSync, or "" before enrollment
	AckedKey string `json:"acked_key,omitempty"` // distributing: the new key it acknowledged
	Up       bool   `json:"up"`                  // control connection established
}

// RotationInfo describes the server's key rotation (the last one, when
// Phase is "idle").
type RotationInfo struct {
	Phase        string     `json:"phase"`                 // idle, distributing, activating, grace or retiring
	Seq          uint64     `json:"seq"`                   // rotation number, 0 before the first
	Reason       string     `json:"reason,omitempty"`      // why it was started
	Distribution string     `json:"distribution"`          // "auto" or "manual" (of the current rotation)
	OldKey       string     `json:"old_key,omitempty"`     // key being replaced
	NewKey       string     `json:"new_key,omitempty"`     // key being rolled in
	Started      *time.Time `json:"started,omitempty"`     // when the current or last rotation started
	Deadline     *time.Time `json:"deadline,omitempty"`    // distributing (auto): activation at the latest
	GraceUntil   *time.Time `json:"grace_until,omitempty"` // grace: when the old key is retired
	Waiting      int        `json:"waiting"`               // distributing: nodes waited for
	Acked        int        `json:"acked"`                 // distributing: nodes holding the new key
	Pending      int        `json:"pending"`               // distributing: nodes not yet answered
	Behind       int        `json:"behind"`                // nodes that missed a step
	Queued       int        `json:"queued"`                // requests waiting for this rotation to end
	Next         string     `json:"next_step,omitempty"`   // what happens next, in words
	Error        string     `json:"error,omitempty"`       // set when a step could not be persisted: rotation halted
}

// KeyList is the result of OpListKey.
type KeyList struct {
	Keys     []KeyInfo     `json:"keys"`
	Nodes    []NodeKeyInfo `json:"nodes"`
	Rotation RotationInfo  `json:"rotation"`
}

// CreateNodeArgs are the arguments of OpCreateNode. Mom is an IP address
// or a host name (ParseMom), which the server resolves once, now. Port 0
// means the server's default IM port.
type CreateNodeArgs struct {
	Name string `json:"name"`
	Mom  string `json:"mom"`
	Port int    `json:"port"`
}

// NodeArgs name one node.
type NodeArgs struct {
	Name string `json:"name"`
}

// ListNodeArgs are the arguments of OpListNode; Name "" lists every node.
type ListNodeArgs struct {
	Name string `json:"name"`
}

// Attr is one attribute assignment NAME=VALUE.
type Attr struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SetArgs are the arguments of OpSetNode (Name is the node) and
// OpSetServer (Name is ""). Attributes are applied all or nothing.
type SetArgs struct {
	Name  string `json:"name"`
	Attrs []Attr `json:"attrs"`
}

// UnsetArgs are the arguments of OpUnsetServer: the attributes that go
// back to their defaults, all or nothing.
type UnsetArgs struct {
	Attrs []string `json:"attrs"`
}

// KeyArgs are the arguments of OpExportKey and OpActivateKey. File is an
// absolute path, written by the server with owner-only permissions.
type KeyArgs struct {
	ID   string `json:"id"`
	File string `json:"file,omitempty"`
	// Force (activate key ID force) activates in manual distribution
	// although some nodes do not hold the key yet: they are cut off.
	Force bool `json:"force,omitempty"`
}
