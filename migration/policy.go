// Package migration is the pure core of momgate's live migration from the
// legacy address-list protocol (v1, modelled on OpenPBS IS_CLUSTER_ADDRS)
// to PING (v2): which versions each side speaks in each mode, who needs
// address lists, the no-downgrade ratchet, the admission decision that
// combines the legacy list with PING, the rolling-migration plan as a
// state machine, and a cost model of what the server pushes.
//
// It does no I/O: the daemons and the migration helper feed it what they
// observe and carry out what it decides.
package migration

import (
	"strings"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// ServerVersions is the VersionBit mask the server accepts on MOM control
// connections in mode m: legacy accepts v1 only, compat both, ping v2 only.
func ServerVersions(m proto.Mode) uint8 {
	switch m {
	case proto.ModeLegacy:
		return proto.VersionBitV1
	case proto.ModeCompat:
		return proto.VersionBitV1 | proto.VersionBitV2
	case proto.ModePing:
		return proto.VersionBitV2
	}
	return 0
}

// MomVersions is the VersionBit mask a MOM speaks when its effective
// protocol is p. canV2 is false while the MOM holds no cluster key and
// cannot get one (not enrolled and no enrollment token): it then speaks
// v1 at most.
func MomVersions(p proto.Mode, canV2 bool) uint8 {
	var v uint8
	if p == proto.ModeLegacy || p == proto.ModeCompat {
		v |= proto.VersionBitV1
	}
	if canV2 && (p == proto.ModeCompat || p == proto.ModePing) {
		v |= proto.VersionBitV2
	}
	return v
}

// ControlVersion is the highest version in both masks, or 0 if none.
func ControlVersion(server, mom uint8) proto.Version {
	both := server & mom
	switch {
	case both&proto.VersionBitV2 != 0:
		return proto.V2
	case both&proto.VersionBitV1 != 0:
		return proto.V1
	}
	return 0
}

// NeedsList reports whether the server pushes address lists (and the
// upgraded set) to a MOM that advertised versions, while in mode m. In
// ping mode nobody gets a push.
func NeedsList(m proto.Mode, versions uint8) bool {
	return m != proto.ModePing && m.Valid() && versions&proto.VersionBitV1 != 0
}

// Upgrades reports whether a node whose MOM authenticated by PING while
// advertising versions is to be marked upgraded: it speaks v2 and no
// longer v1. A compat MOM (both) is not marked: it still legitimately
// talks v1 with legacy-only sisters. Once marked, legacy admission of the
// node is refused everywhere until an administrator rolls it back.
func Upgrades(versions uint8) bool {
	return versions&proto.VersionBitV2 != 0 && versions&proto.VersionBitV1 == 0
}

// VersionsString formats a VersionBit mask as "v1", "v2", "v1,v2" or "".
func VersionsString(bits uint8) string {
	var out []string
	if bits&proto.VersionBitV1 != 0 {
		out = append(out, "v1")
	}
	if bits&proto.VersionBitV2 != 0 {
		out = append(out, "v2")
	}
	return strings.Join(out, ",")
}

// ParseVersions parses VersionsString's output; unknown words are ignored.
func ParseVersions(s string) uint8 {
	var bits uint8
	for _, w := range strings.Split(s, ",") {
		switch strings.TrimSpace(w) {
		case "v1":
			bits |= proto.VersionBitV1
		case "v2":
			bits |= proto.VersionBitV2
		}
	}
	return bits
}

// Refusal reasons of the admission decision, as registered in package
// reasons (audit labels with their Reject codes).
const (
	RefuseNotListed = reasons.NotListed // v1 from an address not on the pushed list
	RefuseDowngrade = reasons.Downgrade // v1 from an upgraded node's address
	RefuseV1        = reasons.V1Refused // v1 to a MOM that speaks PING only
	RefuseV2        = reasons.V2Refused // PING to a MOM that speaks legacy only
	RefuseRevoked   = reasons.Revoked   // v1 from a denied address
)

// Inbound is what a MOM knows about an incoming IM connection when its
// first frame arrives.
type Inbound struct {
	Protocol proto.Mode    // the receiving MOM's effective protocol
	Version  proto.Version // version of the first frame: V2 for Ping, V1 for a v1 IM frame
	OnList   bool          // the source address is on the MOM's address list
	Upgraded bool          // the source address is an upgraded node's
	Revoked  bool          // the source address is denied
}

// Verdict is the admission decision for an Inbound connection.
type Verdict struct {
	// Admit is true when the connection may go on: for v1 it is admitted
	// by the list; for v2 the PING swap and its checks decide.
	Admit   bool
	ByList  bool           // admitted on the strength of the address list (v1)
	Refusal reasons.Reason // a Refuse* reason when Admit is false
}

// AdmitInbound decides on an incoming IM connection. The no-downgrade
// check comes before the mode check, so that a v1 attempt from an upgraded
// node's address is reported as the downgrade it is, whatever the mode.
func AdmitInbound(in Inbound) Verdict {
	if in.Version == proto.V2 {
		if in.Protocol == proto.ModeLegacy {
			return Verdict{Refusal: RefuseV2}
		}
		return Verdict{Admit: true}
	}
	switch {
	case in.Revoked:
		return Verdict{Refusal: RefuseRevoked}
	case in.Upgraded:
		return Verdict{Refusal: RefuseDowngrade}
	case in.Protocol != proto.ModeLegacy && in.Protocol != proto.ModeCompat:
		return Verdict{Refusal: RefuseV1}
	case !in.OnList:
		return Verdict{Refusal: RefuseNotListed}
	}
	return Verdict{Admit: true, ByList: true}
}

// Attempts lists the versions an initiating MOM with effective protocol p
// tries, best first: the highest version both ends allow wins, because a
// responder that speaks legacy only refuses a Ping with a version
// rejection and the initiator then falls back (see MayFallback).
func Attempts(p proto.Mode, canPing bool) []proto.Version {
	switch p {
	case proto.ModeLegacy:
		return []proto.Version{proto.V1}
	case proto.ModeCompat:
		if canPing {
			return []proto.Version{proto.V2, proto.V1}
		}
		return []proto.Version{proto.V1}
	case proto.ModePing:
		if canPing {
			return []proto.Version{proto.V2}
		}
	}
	return nil
}

// MayFallback reports whether an initiator with effective protocol p whose
// Ping was refused may retry with v1. Only a refusal that says the peer
// speaks legacy only allows it, only in compat, and never towards an
// upgraded node: an attacker who forges that refusal cannot make a MOM
// talk v1 to a node that speaks PING.
func MayFallback(p proto.Mode, peerUpgraded, refusedAsLegacyOnly bool) bool {
	return p == proto.ModeCompat && refusedAsLegacyOnly && !peerUpgraded
}
