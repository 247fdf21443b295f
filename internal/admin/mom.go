package admin

import (
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Operations of a MOM's admin socket, with their argument and result
// types (the --json output of momgate-mom).
const (
	OpPeers       = "peers"        // no args -> []AdmittedPeer
	OpStatus      = "status"       // no args -> MomStatus
	OpPing        = "ping"         // PingArgs -> PingResult
	OpJobStart    = "job_start"    // JobStartArgs -> JobInfo
	OpJobList     = "job_list"     // no args -> []JobInfo
	OpJobStop     = "job_stop"     // JobArgs -> JobInfo (the job as it stopped)
	OpKeyImport   = "key_import"   // KeyFileArgs -> KeyResult
	OpKeyActivate = "key_activate" // KeyIDArgs -> KeyResult
)

// AdmittedPeer is one row of a MOM's admitted-peers table.
type AdmittedPeer struct {
	Addr      string    `json:"addr"`
	Name      string    `json:"name"` // node name, "" if the server could not be asked (or v1)
	NodeID    string    `json:"node_id"`
	KeyID     string    `json:"key_id"`
	Direction string    `json:"direction"` // "in" (they connected) or "out"
	Protocol  string    `json:"protocol"`  // "v2" (admitted by PING) or "v1" (by the address list)
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Count     uint64    `json:"admissions"`
	// Stamp is the timestamp (ns since the epoch) of the sister's PING
	// (or PingReply) last admitted: how far its clock, or its timestamps,
	// run from this MOM's.
	Stamp uint64 `json:"stamp,omitempty"`
	// The live IM connections with the sister now (docs/PROTOCOL.md 6):
	// how many, and of the youngest one its protection (none, auth,
	// encrypt), the age of its keys (of the connection when unsealed) and
	// its completed rekeys. Empty when none is open.
	Sessions int    `json:"sessions"`
	Session  string `json:"session,omitempty"`
	KeyAge   string `json:"key_age,omitempty"`
	Rekeys   uint64 `json:"rekeys"`
}

// MomStatus is a MOM's status report.
type MomStatus struct {
	Node        string            `json:"node"`
	NodeID      string            `json:"node_id"`
	Listen      string            `json:"listen"`
	Server      string            `json:"server"`
	Connected   bool              `json:"connected"`
	ServerError string            `json:"server_error,omitempty"`
	Keys        []KeyInfo         `json:"keys"`
	Peers       int               `json:"peers"`
	Admitted    uint64            `json:"admitted"`     // inbound: sisters this MOM admitted (PING or list)
	AdmittedOut uint64            `json:"admitted_out"` // outbound: PING swaps in which a sister admitted this MOM
	Audit       audit.Snapshot    `json:"audit"`
	Legacy      *MomLegacyStatus  `json:"legacy"`
	Sessions    *MomSessionStatus `json:"sessions"`

	// Server is, with a list of servers, the one the MOM is on (or dials
	// now); Servers the --server list in the order tried (docs/HA.md 7).
	Servers []string `json:"servers"`
	// ServerSwitches counts control sessions established with another
	// server than the session before; ServerRedirects the followers'
	// NotLeader frames by outcome (followed, no_leader, outside_list).
	ServerSwitches  uint64            `json:"server_switches"`
	ServerRedirects map[string]uint64 `json:"server_redirects"`
}

// MomSessionStatus is the sealed-session part of a MOM's status
// (docs/PROTOCOL.md 6).
type MomSessionStatus struct {
	IMSecurity   string `json:"im_security"`   // the cluster's, as last heard from the server
	ServerSealed bool   `json:"server_sealed"` // the server proved it speaks sealed sessions
	Control      string `json:"control"`       // protection of the control session: none, auth, encrypt; "" when down
	ControlAge   string `json:"control_key_age,omitempty"`
	Rekeys       uint64 `json:"control_rekeys"`
	Marks        int    `json:"marks"`    // node ids and addresses known to speak sealed sessions
	IMOpen       int    `json:"im_links"` // admitted IM connections open now
}

// MomLegacyStatus is the migration part of a MOM's status.
type MomLegacyStatus struct {
	Setting    string `json:"protocol_setting"`    // --protocol: legacy, compat, ping or follow
	Protocol   string `json:"protocol"`            // what the MOM speaks now
	ServerMode string `json:"server_mode"`         // the server's mode as last heard
	Control    string `json:"control"`             // version of the control connection: v1, v2 or ""
	ListAddrs  int    `json:"list_addrs"`          // addresses on the cluster list
	ListRuns   int    `json:"list_runs"`           // runs of consecutive addresses
	Lists      uint64 `json:"lists_received"`      // ClusterAddrs pushes received
	ListBytes  uint64 `json:"list_bytes_received"` // their bytes, headers included
	Upgraded   int    `json:"upgraded_nodes"`      // nodes whose legacy admission is refused
	V1Admitted uint64 `json:"v1_admitted"`         // IM connections admitted by the list
}

// PingArgs are the arguments of OpPing.
type PingArgs struct {
	Addr string `json:"addr"` // sister IM address ip:port
}

// PingResult is the outcome of an outbound swap with a sister.
type PingResult struct {
	Addr     string           `json:"addr"`
	Admitted bool             `json:"admitted"`
	Reason   reasons.Reason   `json:"reason,omitempty"`
	Error    string           `json:"error,omitempty"`
	Code     proto.RejectCode `json:"code,omitempty"` // the peer's Reject code, if it refused
	NodeID   string           `json:"node_id,omitempty"`
	Name     string           `json:"name,omitempty"` // the sister's node name, if the server told it
	KeyID    string           `json:"key_id,omitempty"`
	RTTMilli float64          `json:"rtt_ms"`
	// Session is the protection the swap agreed on: none, auth or encrypt.
	Session string `json:"session,omitempty"`
}

// JobStartArgs are the arguments of OpJobStart. Interval and Budget are Go
// durations ("100ms"); empty means the default.
type JobStartArgs struct {
	Name     string   `json:"name"`
	Sisters  []string `json:"sisters"`
	Interval string   `json:"interval,omitempty"`
	Budget   string   `json:"budget,omitempty"`
}

// JobArgs name a job.
type JobArgs struct {
	Name string `json:"name"`
}

// SisterInfo is one sister of a job, as its mother superior sees it.
type SisterInfo struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`              // IM address last used, "" before the first lookup
	Protocol     string `json:"protocol"`          // "v1" or "v2": how the current connection was admitted
	Session      string `json:"session"`           // its protection: none, auth or encrypt
	KeyAge       string `json:"key_age,omitempty"` // age of its session keys (of the connection when unsealed)
	Rekeys       uint64 `json:"rekeys"`            // rekeys the current connection's session completed
	Connected    bool   `json:"connected"`         // an admitted connection is open
	PollsOK      uint64 `json:"polls_ok"`
	PollsFailed  uint64 `json:"polls_failed"`
	Readmissions uint64 `json:"readmissions"` // admissions after the first (reconnects)
	Disruptions  uint64 `json:"disruptions"`  // failure streaks that outlasted the retry budget
	LastError    string `json:"last_error,omitempty"`
}

// JobInfo is a job and its counters (totals over its sisters).
type JobInfo struct {
	Name         string       `json:"name"`
	Interval     string       `json:"interval"`
	Budget       string       `json:"budget"`
	Started      time.Time    `json:"started"`
	PollsOK      uint64       `json:"polls_ok"`
	PollsFailed  uint64       `json:"polls_failed"`
	Readmissions uint64       `json:"readmissions"`
	Disruptions  uint64       `json:"disruptions"`
	Sisters      []SisterInfo `json:"sisters"`
}

// KeyFileArgs are the arguments of OpKeyImport: an absolute path.
type KeyFileArgs struct {
	File string `json:"file"`
}

// KeyIDArgs are the arguments of OpKeyActivate.
type KeyIDArgs struct {
	ID string `json:"id"`
}

// KeyResult is the outcome of a manual key operation on a MOM.
type KeyResult struct {
	Key     KeyInfo   `json:"key"`     // the key imported or activated, in its new state
	Keys    []KeyInfo `json:"keys"`    // the MOM's keyring afterwards
	Running bool      `json:"running"` // a running MOM applied it (false: keyring.json edited offline)
	Acked   bool      `json:"acked"`   // the server was told (KeyAck) that this node holds the key
}

// KeyInfoOf describes a cluster key.
func KeyInfoOf(k *keys.Key) KeyInfo {
	return KeyInfo{ID: k.ID.String(), State: k.State.String(), Created: k.Created}
}

// KeyInfos describes every key of a keyring, in its order.
func KeyInfos(r *keys.Keyring) []KeyInfo {
	out := []KeyInfo{}
	for _, k := range r.Keys() {
		out = append(out, KeyInfoOf(k))
	}
	return out
}

// KeyResultOf is the KeyResult of key id in keyring r after a manual key
// operation; running says whether a running MOM applied it.
func KeyResultOf(r *keys.Keyring, id keys.KeyID, running bool) *KeyResult {
	res := &KeyResult{Keys: KeyInfos(r), Running: running}
	if k := r.Lookup(id); k != nil {
		res.Key = KeyInfoOf(k)
	}
	return res
}
