package pbsauth

import (
	"errors"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/reasons"
)

// Refusal reasons of this package; the PING checks refuse with the
// sentinels of package ping (ping.ErrAddrMismatch, ping.ErrRevoked...).
var (
	// ErrMalformed: a token or local frame that does not follow its layout.
	ErrMalformed = errors.New("malformed")
	// ErrUnknownNode: the initiator's node id is not a node of the registry.
	ErrUnknownNode = errors.New("not a node of this cluster")
	// ErrNotEnrolled: this daemon has no cluster key to seal with yet.
	ErrNotEnrolled = errors.New("this host's momgate daemon is not enrolled yet")
	// ErrNoHandshake: the handshake id is unknown, expired, already used,
	// or was started by another local user.
	ErrNoHandshake = errors.New("no such handshake (expired, used, or another caller's)")
	// ErrKind: the vouch is for another kind of connection (user or service).
	ErrKind = errors.New("vouch is for another kind of connection")
	// ErrReplay: a recorded handshake step again: a step 1 PING this
	// daemon answered before, or a vouch that echoes another handshake's
	// challenge.
	ErrReplay = errors.New("replayed handshake")
	// ErrNodeMismatch: the vouch names another node than the step 1 PING.
	ErrNodeMismatch = errors.New("vouch names another node than the ping")
	// ErrResolve: the peer host has no usable address.
	ErrResolve = errors.New("peer host has no usable address")
	// ErrInternal: the daemon could not do its part (sealing, randomness).
	ErrInternal = errors.New("internal error")
)

// labels labels this package's sentinels; ping.Reason labels the rest.
var labels = []struct {
	err   error
	label reasons.Reason
}{
	{ErrMalformed, reasons.Malformed},
	{ErrUnknownNode, reasons.UnknownNode},
	{ErrNotEnrolled, reasons.NotEnrolled},
	{ErrNoHandshake, reasons.NoHandshake},
	{ErrKind, reasons.Kind},
	{ErrNodeMismatch, reasons.NodeMismatch},
	{ErrReplay, reasons.Replay},
	{ErrResolve, reasons.Resolve},
	{ErrInternal, reasons.Internal},
}

// Reason returns the short label of a refusal, for the audit log, the
// local protocol and PBS's log: one of this package's labels, or
// ping.Reason's.
func Reason(err error) reasons.Reason {
	for _, r := range labels {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return ping.Reason(err)
}
