package handshake

import (
	"fmt"
	"io"

	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// IMResponder is what a MOM answers IM connections with: its sealer (nil
// before it enrolled) and its verifier.
type IMResponder struct {
	Sealer   *ping.Sealer
	Verifier *ping.Verifier
	// Sessions, when set, makes the responder speak sealed sessions
	// (docs/PROTOCOL.md 6.7); nil answers a SessionPing as an unknown
	// frame, as a MOM of before sealed sessions does.
	Sessions *IMSessions
}

// IMSessions is an IM responder's sealed-session policy.
type IMSessions struct {
	SessionParams
	// Min is the cluster's im_security as last heard from the server.
	Min session.Protection
	// Marks are the peers known to speak sealed sessions: a plain Ping
	// from one is refused (session_downgrade).
	Marks *session.Marks
	// Ephemerals is the responder's reused ephemeral key (nil: a fresh
	// key per swap).
	Ephemerals *session.Ephemerals
}

// IMAdmission is the outcome of an IM connection's admission: what the
// responder learnt of the sister, admitted or not.
type IMAdmission struct {
	Version proto.Version // of the first frame; admitted, V1 is by the address list and V2 by the swap
	Node    proto.NodeID  // V2: the sister's node id, once the swap has read it
	Sender  proto.Addr    // admitted: the sister's address
	KeyID   uint32        // V2: the key id its Ping names, when Keyed
	Keyed   bool          // the frame went on to the swap, so KeyID is known
	// Timestamp is the admitted sister's Ping stamp (V2).
	Timestamp uint64
	// First is an admitted v1 connection's first request, to be served.
	First proto.Message
	// SessionSwap: the sister sent a SessionPing and the swap agreed on a
	// protection; Session is its sealed session (nil if none was chosen).
	SessionSwap bool
	Session     *session.Session
}

// ReadFirstFrame reads an IM connection's first frame. A failure is a
// *Rejection, answered only when the frame was malformed (a silent or
// closed peer gets nothing).
func ReadFirstFrame(r io.Reader) ([]byte, error) {
	return ReadFirstFrameInto(r, make([]byte, ping.FrameSize))
}

// ReadFirstFrameInto is ReadFirstFrame reading into buf when the frame
// fits it (a Ping fits ping.FrameSize bytes).
func ReadFirstFrameInto(r io.Reader, buf []byte) ([]byte, error) {
	frame, err := proto.ReadFrameLimit(r, buf[:cap(buf)], PreAuthMaxFrame)
	if err != nil {
		return nil, firstFrameRejection(err)
	}
	return frame, nil
}

// AdmitIM decides on an IM connection from its first frame, as
// docs/PROTOCOL.md section 4.5 says: what the frame's version may do here
// (migration.AdmitInbound, with in as the MOM knows it once the frame has
// come), then, for a Ping, the swap. A refusal is a *Rejection.
func AdmitIM(rw io.ReadWriter, frame []byte, remote, local proto.Addr, in migration.Inbound, r IMResponder) (IMAdmission, error) {
	ver := proto.Version(frame[2])
	adm := IMAdmission{Version: ver}
	in.Version = ver
	if ver == proto.V1 {
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return adm, refuseIM(ver, reasons.Malformed, "%s", err)
		}
		if t := msg.Type(); t != proto.TypeIMJoin && t != proto.TypeIMPoll {
			return adm, refuseIM(ver, reasons.Malformed, "v1 connection must start with IMJoin or IMPoll, not %s", t)
		}
		adm.First = msg
	}
	if v := migration.AdmitInbound(in); !v.Admit {
		return IMAdmission{Version: ver}, refuseIM(ver, v.Refusal, "%s", refusalText(v.Refusal, in, remote))
	}
	if ver == proto.V1 {
		adm.Sender = remote
		return adm, nil
	}
	adm.KeyID, adm.Keyed = ping.KeyIDOf(frame)
	if r.Sealer == nil {
		return adm, Refuse(reasons.NotEnrolled, "this MOM has no cluster key yet")
	}
	var res ping.Result
	if r.Sessions != nil && proto.Type(frame[3]) == proto.TypeSessionPing {
		cfg := session.Config{Channel: session.ChannelIM, Min: r.Sessions.Min, Rand: r.Sealer.Rand, Limits: r.Sessions.Limits,
			Ephemerals: r.Sessions.Ephemerals}
		s, err := RespondSession(rw, frame, remote, local, r.Sealer, r.Verifier, cfg, r.Sessions.Now, &res)
		adm.Node = res.Node
		if err != nil {
			return adm, SessionRejection(err)
		}
		adm.SessionSwap, adm.Session = true, s
		adm.Sender, adm.KeyID, adm.Timestamp = res.Sender, res.KeyID, res.Timestamp
		return adm, nil
	}
	var marks *session.Marks
	if r.Sessions != nil {
		marks = r.Sessions.Marks
	}
	if err := RespondPlain(rw, frame, remote, local, r.Sealer, r.Verifier, &res, marks); err != nil {
		adm.Node = res.Node
		return adm, SessionRejection(err)
	}
	adm.Node, adm.Sender, adm.KeyID, adm.Timestamp = res.Node, res.Sender, res.KeyID, res.Timestamp
	return adm, nil
}

// refusalText says why the admission decision refused a connection from
// remote.
func refusalText(refusal reasons.Reason, in migration.Inbound, remote proto.Addr) string {
	switch refusal {
	case migration.RefuseV2:
		return "this MOM speaks the legacy protocol only (v1): no PING"
	case migration.RefuseV1:
		return fmt.Sprintf("this MOM speaks PING only (%s): legacy (v1) refused", in.Protocol)
	case migration.RefuseDowngrade:
		return fmt.Sprintf("%s is an upgraded node: legacy (v1) admission refused (downgrade)", remote)
	case migration.RefuseNotListed:
		return fmt.Sprintf("%s is not on the cluster address list", remote)
	}
	return fmt.Sprintf("%s is revoked", remote)
}

// firstFrameRejection is the refusal of an IM connection whose first frame
// could not be read.
func firstFrameRejection(err error) *Rejection {
	rj := &Rejection{Reason: ReadFailureReason(err), Err: err}
	if rj.Reason == reasons.Malformed {
		rj.Answer = &proto.Reject{Code: reasons.Malformed.Code(), Reason: err.Error()}
	}
	return rj
}
