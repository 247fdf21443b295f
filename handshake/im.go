package handshake

import (
	"fmt"
	"io"

	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// IMResponder is what a MOM answers IM connections with. AdmitIM asks
// Inbound and Sealer once the first frame has arrived, so that it decides
// on the MOM's state at that moment.
type IMResponder struct {
	// Inbound is what the MOM knows of a connection from remote: its own
	// protocol, and whether remote is listed, upgraded or denied.
	Inbound func(remote proto.Addr) migration.Inbound
	// Sealer is the MOM's sealer, nil before it enrolled.
	Sealer   func() *ping.Sealer
	Verifier *ping.Verifier
}

// IMAdmission is the outcome of an IM connection's admission: what the
// responder learnt of the sister, admitted or not.
type IMAdmission struct {
	Version proto.Version // of the first frame; admitted, V1 is by the address list and V2 by the swap
	Node    proto.NodeID  // V2: the sister's node id, once the swap has read it
	Sender  proto.Addr    // admitted: the sister's address
	KeyID   uint32        // V2: the key id its Ping names, when Keyed
	Keyed   bool          // the frame went on to the swap, so KeyID is known
	// First is an admitted v1 connection's first request, to be served.
	First proto.Message
}

// AdmitIM reads an IM connection's first frame from rw and decides on the
// connection, as docs/PROTOCOL.md section 4.5 says: what the frame's
// version may do here (migration.AdmitInbound, on r.Inbound), then, for a
// Ping, the swap. A refusal is a *Rejection; one whose first frame could
// not be read is answered only when the frame was malformed (a silent or
// closed peer gets nothing).
func AdmitIM(rw io.ReadWriter, remote, local proto.Addr, r *IMResponder) (IMAdmission, error) {
	frame, err := proto.ReadFrameLimit(rw, make([]byte, ping.FrameSize), PreAuthMaxFrame)
	if err != nil {
		return IMAdmission{}, firstFrameRejection(err)
	}
	ver := proto.Version(frame[2])
	adm := IMAdmission{Version: ver}
	in := r.Inbound(remote)
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
	sealer := r.Sealer()
	if sealer == nil {
		return adm, Refuse(reasons.NotEnrolled, "this MOM has no cluster key yet")
	}
	var res ping.Result
	if err := Respond(rw, frame, remote, local, sealer, r.Verifier, &res); err != nil {
		adm.Node = res.Node
		return adm, &Rejection{Reason: ping.Reason(err), Err: err}
	}
	adm.Node, adm.Sender, adm.KeyID = res.Node, res.Sender, res.KeyID
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
