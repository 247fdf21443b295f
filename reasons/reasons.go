// Package reasons is the one registry of rejection reasons: the label
// under which a refusal is written to the audit log and counted (the
// momgate_rejections_total metric, `momgate-mom status`, `print server`),
// what it means, and the Reject code (docs/PROTOCOL.md section 2.1) it is
// answered with. Package ping, package migration, package handshake and
// the daemons spell reasons only through these constants; the metric's
// help text and docs/PROTOCOL.md section 4.10 enumerate All.
package reasons

import "github.com/momgate/momgate/proto"

// Reason is a rejection label.
type Reason string

// The PING checks of docs/PROTOCOL.md section 3.2, in check order, then
// the guard's own refusal.
const (
	Malformed    Reason = "malformed"
	Version      Reason = "version"
	KeyMismatch  Reason = "key_mismatch"
	Auth         Reason = "auth"
	AddrMismatch Reason = "addr_mismatch"
	WrongDest    Reason = "wrong_dest"
	Echo         Reason = "echo"
	Replay       Reason = "replay"
	Stale        Reason = "stale"
	Floor        Reason = "floor"
	Unattested   Reason = "unattested"
	Revoked      Reason = "revoked"
	Persist      Reason = "persist"
)

// Refusals before the peer sent its first frame.
const (
	HandshakeTimeout Reason = "handshake_timeout"
	Closed           Reason = "closed"
	Handshake        Reason = "handshake"
	RateLimited      Reason = "rate_limited"
)

// Refusals of an Enroll or Hello at the server (docs/PROTOCOL.md 4.1).
const (
	TokenUnknown    Reason = "token_unknown"
	TokenUsed       Reason = "token_used"
	TokenExpired    Reason = "token_expired"
	TokenSecret     Reason = "token_secret"
	UnknownNode     Reason = "unknown_node"
	NodeMismatch    Reason = "node_mismatch"
	AlreadyEnrolled Reason = "already_enrolled"
	Internal        Reason = "internal"
)

// Refusals of the migration between the protocols (docs/PROTOCOL.md 4.3 to 4.6).
const (
	V1Refused Reason = "v1_refused"
	V2Refused Reason = "v2_refused"
	Downgrade Reason = "downgrade"
	NotListed Reason = "not_listed"
)

// A MOM's own refusals and outbound failures, and the catch-all.
const (
	NotEnrolled   Reason = "not_enrolled"
	RefusedByPeer Reason = "refused_by_peer"
	Connect       Reason = "connect"
	Other         Reason = "other"
)

// Refusals of sealed sessions (docs/PROTOCOL.md section 6): at the swap
// (offer, policy, downgrade), and of a record or of the session's own
// protocol once it runs (auth to protocol), which close the connection
// without a Reject: the stream can no longer be trusted.
const (
	SessionAuth      Reason = "session_auth"
	SessionReplay    Reason = "session_replay"
	SessionSize      Reason = "session_size"
	SessionExpired   Reason = "session_expired"
	SessionProtocol  Reason = "session_protocol"
	SessionOffer     Reason = "session_offer"
	SessionPolicy    Reason = "session_policy"
	SessionDowngrade Reason = "session_downgrade"
)

// Refusals of the OpenPBS plugin's local gate (docs/OPENPBS.md); the
// PING checks there refuse with the reasons above.
const (
	NoHandshake Reason = "no_handshake"
	Kind        Reason = "kind"
	Resolve     Reason = "resolve"
)

// Info is one registered reason.
type Info struct {
	Reason Reason
	// Code is the Reject code a refusal for this reason carries; 0 where
	// the side that refuses sends none (it initiated the connection).
	Code proto.RejectCode
	// IMCode, when not 0, replaces Code on an IM connection.
	IMCode proto.RejectCode
	// Counted is false for a reason only a command reports (momgate-mom
	// ping), never written to the audit log nor counted.
	Counted bool
	// Meaning says when it is given.
	Meaning string
}

var registry = []Info{
	{Malformed, proto.RejectMalformed, 0, true, "the bytes are not a valid frame, or not the frame due (a bad header, a truncated or oversized frame, a proof or v1 request that does not decode)"},
	{Version, proto.RejectVersion, 0, true, "the PING is not version 2"},
	{KeyMismatch, proto.RejectUnknownKey, 0, true, "the PING names a key id the receiver does not hold; at the server also: key_distribution is manual and the node lacks the active key"},
	{Auth, proto.RejectAuth, 0, true, "the PING does not open under the key it names; at the server, an Enroll or Hello proof that does not open or answers another challenge"},
	{AddrMismatch, proto.RejectAddrMismatch, 0, true, "the sender address inside the PING, or the node's registered address, is not the connection's source (spoofing)"},
	{WrongDest, proto.RejectWrongDest, 0, true, "the PING is for another receiver"},
	{Echo, proto.RejectMalformed, 0, true, "the PingReply does not echo the initiator's random bytes"},
	{Replay, proto.RejectReplay, 0, true, "the timestamp is not newer than the sender's high-water mark"},
	{Stale, proto.RejectStale, 0, true, "first contact outside the freshness window"},
	{Floor, proto.RejectStale, 0, true, "a first contact, or a sender's first PING after a recovery, not above the attested or recovery floor (4.9)"},
	{Unattested, proto.RejectStale, 0, true, "a receiver that lost marks and trusts no clock has no attestation from the server for the sender"},
	{Revoked, proto.RejectRevoked, 0, true, "the sender's node id or address is denied"},
	{Persist, proto.RejectInternal, 0, true, "the receiver could not persist the sender's new high-water mark, so it refused rather than reopen replay after a restart"},
	{HandshakeTimeout, proto.RejectMalformed, 0, true, "the handshake deadline passed before the peer sent what it had to"},
	{Closed, proto.RejectMalformed, 0, true, "the peer closed the connection before sending a frame"},
	{Handshake, proto.RejectMalformed, 0, true, "any other failure before the peer authenticated (a reset connection, a failed write)"},
	{RateLimited, proto.RejectRateLimited, 0, true, "the source address has too many unauthenticated connections open, or opens them too fast"},
	{TokenUnknown, proto.RejectTokenUnknown, 0, true, "no enrollment token has that id"},
	{TokenUsed, proto.RejectTokenUsed, 0, true, "the enrollment token was used already"},
	{TokenExpired, proto.RejectTokenExpired, 0, true, "the enrollment token expired"},
	{TokenSecret, proto.RejectAuth, 0, true, "the enrollment token's secret does not match"},
	{UnknownNode, proto.RejectUnknownNode, 0, true, "no enrolled node has the Hello's id, the token's node was deleted, or (v1) no node has the source address or the name"},
	{NodeMismatch, proto.RejectAuth, 0, true, "the PING of a control connection names another node than its Enroll or Hello"},
	{AlreadyEnrolled, proto.RejectNotAllowed, 0, true, "the node is already enrolled with another identity"},
	{Internal, proto.RejectInternal, 0, true, "the server could not persist an enrollment or wrap the keys"},
	{V1Refused, proto.RejectNotAllowed, 0, true, "a legacy (v1) hello or IM connection to a server or MOM that speaks PING only"},
	{V2Refused, proto.RejectNotAllowed, proto.RejectVersion, true, "an Enroll, Hello or Ping to a server or MOM that speaks legacy only; on an IM connection the code is version, on which a compat initiator falls back to v1"},
	{Downgrade, proto.RejectLegacyRefused, 0, true, "legacy (v1) from an upgraded node's address, or its LegacyHello"},
	{NotListed, proto.RejectNotAllowed, 0, true, "a v1 IM connection from an address not on the pushed cluster list"},
	{NotEnrolled, proto.RejectInternal, 0, true, "this MOM holds no cluster key yet: it has not enrolled"},
	{RefusedByPeer, 0, 0, true, "outbound: the sister answered the PING with a Reject (its code is in the ping result)"},
	{Connect, 0, 0, false, "outbound (momgate-mom ping): the sister could not be reached"},
	{SessionAuth, 0, 0, true, "a sealed record failed to authenticate (a flipped bit, a forged, injected or truncated record, a plain frame inside a sealed stream)"},
	{SessionReplay, 0, 0, true, "a genuine sealed record out of place: a copy of an earlier one, or one after a dropped record"},
	{SessionSize, 0, 0, true, "a sealed record's header announces more than the record cap"},
	{SessionExpired, 0, 0, true, "the session keys reached their age or record limit before a rekey replaced them (the peer stopped answering)"},
	{SessionProtocol, 0, 0, true, "an authenticated record broke the session protocol (a rekey message out of order, a record that is not one whole frame)"},
	{SessionOffer, proto.RejectSessionOffer, 0, true, "a session offer or answer is malformed or does not match the connection"},
	{SessionPolicy, proto.RejectSessionPolicy, 0, true, "no protection is acceptable to both sides (the offer is weaker than this side's im_security)"},
	{SessionDowngrade, proto.RejectSessionDowngrade, 0, true, "an unsealed swap, control session or security-relevant frame from a peer known to speak sealed sessions, or a fallback to an unsealed swap after an unauthenticated refusal"},
	{NoHandshake, 0, 0, true, "OpenPBS gate: the handshake id is unknown, expired, already used, or was started by another local user"},
	{Kind, 0, 0, true, "OpenPBS gate: the vouch is for another kind of connection (user or service)"},
	{Resolve, 0, 0, true, "OpenPBS gate: the peer host has no usable address"},
	{Other, proto.RejectInternal, 0, true, "any other failure; also the label the audit counters use past their limit"},
}

var byReason = func() map[Reason]*Info {
	m := make(map[Reason]*Info, len(registry))
	for i := range registry {
		m[registry[i].Reason] = &registry[i]
	}
	return m
}()

// All lists every registered reason, grouped as the constants are.
func All() []Info { return append([]Info(nil), registry...) }

// Counted lists the reasons that are logged and counted, in registry order.
func Counted() []Reason {
	var out []Reason
	for _, in := range registry {
		if in.Counted {
			out = append(out, in.Reason)
		}
	}
	return out
}

// Lookup returns the registry entry of r.
func Lookup(r Reason) (Info, bool) {
	in, ok := byReason[r]
	if !ok {
		return Info{}, false
	}
	return *in, true
}

// Code is the Reject code a refusal for r carries on a control
// connection; an unregistered reason is internal.
func (r Reason) Code() proto.RejectCode {
	if in, ok := byReason[r]; ok {
		return in.Code
	}
	return proto.RejectInternal
}

// IMCode is the Reject code a refusal for r carries on an IM connection.
func (r Reason) IMCode() proto.RejectCode {
	if in, ok := byReason[r]; ok && in.IMCode != 0 {
		return in.IMCode
	}
	return r.Code()
}

// String returns the label.
func (r Reason) String() string { return string(r) }
