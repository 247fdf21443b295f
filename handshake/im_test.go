package handshake

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// admitIM runs AdmitIM on the first frame the initiator sends; the test's
// initiator plays on the other end of a pipe.
func admitIM(t *testing.T, c *cluster, in migration.Inbound, r *IMResponder, initiate func(net.Conn) error) (IMAdmission, error, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	_ = b.SetDeadline(time.Now().Add(10 * time.Second))
	type out struct {
		adm IMAdmission
		err error
	}
	done := make(chan out, 1)
	go func() {
		defer b.Close()
		frame, err := ReadFirstFrame(b)
		if err != nil {
			var rj *Rejection
			if errors.As(err, &rj) && rj.Answer != nil {
				_ = proto.WriteFrame(b, rj.Answer)
			}
			done <- out{err: err}
			return
		}
		adm, err := AdmitIM(b, frame, momAddr, otherAddr, in, *r)
		var rj *Rejection
		if errors.As(err, &rj) && rj.Answer != nil {
			_ = proto.WriteFrame(b, rj.Answer)
		}
		done <- out{adm, err}
	}()
	ierr := initiate(a)
	o := <-done
	return o.adm, o.err, ierr
}

func TestAdmitIM(t *testing.T) {
	c := newCluster(t)
	sister := newPeer(t, c.ring, proto.NodeID{4})
	r := &IMResponder{Sealer: c.server.sealer, Verifier: c.server.verifier}
	pingFrom := func(conn net.Conn) error {
		var res ping.Result
		return Initiate(conn, otherAddr, momAddr, sister.sealer, sister.verifier, &res)
	}
	v1Poll := func(conn net.Conn) error {
		if err := proto.WriteFrame(conn, &proto.IMPoll{Ver: proto.V1, Job: "j"}); err != nil {
			return err
		}
		frame, err := proto.ReadFrame(conn, nil)
		if err != nil {
			return err
		}
		m, err := proto.Unmarshal(frame)
		if rj, ok := m.(*proto.Reject); ok {
			return PeerRejected(rj)
		}
		return err
	}

	// A Ping to a compat MOM: the swap admits it.
	adm, err, ierr := admitIM(t, c, migration.Inbound{Protocol: proto.ModeCompat}, r, pingFrom)
	if err != nil || ierr != nil || adm.Version != proto.V2 || adm.Node != (proto.NodeID{4}) || adm.Sender != momAddr || !adm.Keyed {
		t.Fatalf("ping to compat: %+v %v %v", adm, err, ierr)
	}
	// A listed v1 poll to a compat MOM: admitted by the list, its request kept.
	adm, err, _ = admitIM(t, c, migration.Inbound{Protocol: proto.ModeCompat, OnList: true}, r, func(conn net.Conn) error {
		return proto.WriteFrame(conn, &proto.IMPoll{Ver: proto.V1, Job: "j"})
	})
	if err != nil || adm.Version != proto.V1 || adm.First == nil || adm.First.Type() != proto.TypeIMPoll || adm.Keyed {
		t.Fatalf("listed v1: %+v %v", adm, err)
	}
	for _, tc := range []struct {
		name     string
		in       migration.Inbound
		r        *IMResponder
		initiate func(net.Conn) error
		want     reasons.Reason
		code     proto.RejectCode // what the initiator reads
	}{
		{"ping to a legacy MOM", migration.Inbound{Protocol: proto.ModeLegacy}, r, pingFrom, reasons.V2Refused, proto.RejectVersion},
		{"v1 to a ping MOM", migration.Inbound{Protocol: proto.ModePing, OnList: true}, r, v1Poll, reasons.V1Refused, proto.RejectNotAllowed},
		{"v1 not listed", migration.Inbound{Protocol: proto.ModeCompat}, r, v1Poll, reasons.NotListed, proto.RejectNotAllowed},
		{"v1 downgrade", migration.Inbound{Protocol: proto.ModeCompat, OnList: true, Upgraded: true}, r, v1Poll, reasons.Downgrade, proto.RejectLegacyRefused},
		{"v1 revoked", migration.Inbound{Protocol: proto.ModeCompat, OnList: true, Revoked: true}, r, v1Poll, reasons.Revoked, proto.RejectRevoked},
		{"not enrolled", migration.Inbound{Protocol: proto.ModePing}, &IMResponder{Verifier: c.server.verifier}, pingFrom, reasons.NotEnrolled, proto.RejectInternal},
		{"v1 not a request", migration.Inbound{Protocol: proto.ModeCompat, OnList: true}, r, func(conn net.Conn) error {
			if err := proto.WriteFrame(conn, &proto.Reject{Ver: proto.V1, Code: 1}); err != nil {
				return err
			}
			frame, err := proto.ReadFrame(conn, nil)
			if err != nil {
				return err
			}
			m, _ := proto.Unmarshal(frame)
			return PeerRejected(m.(*proto.Reject))
		}, reasons.Malformed, proto.RejectMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err, ierr := admitIM(t, c, tc.in, tc.r, tc.initiate)
			var rj *Rejection
			if !errors.As(err, &rj) || rj.Reason != tc.want {
				t.Fatalf("AdmitIM: %v, want a %s rejection", err, tc.want)
			}
			var peer *RejectError
			if !errors.As(ierr, &peer) || peer.Code != tc.code {
				t.Fatalf("initiator: %v, want Reject code %d", ierr, tc.code)
			}
		})
	}
	// A first frame that is no frame is answered malformed; a peer that
	// closes gets nothing.
	_, err, ierr = admitIM(t, c, migration.Inbound{Protocol: proto.ModePing}, r, func(conn net.Conn) error {
		if _, err := conn.Write([]byte("GET / HTTP/1.1")[:proto.HeaderSize]); err != nil {
			return err
		}
		frame, err := proto.ReadFrame(conn, nil)
		if err != nil {
			return err
		}
		m, _ := proto.Unmarshal(frame)
		if rj, ok := m.(*proto.Reject); ok {
			return PeerRejected(rj)
		}
		return nil
	})
	var peerRj *RejectError
	if !errors.As(err, new(*Rejection)) || !errors.As(ierr, &peerRj) || peerRj.Code != proto.RejectMalformed {
		t.Fatalf("garbage first frame: %v, initiator %v", err, ierr)
	}
	_, err, _ = admitIM(t, c, migration.Inbound{Protocol: proto.ModePing}, r, func(conn net.Conn) error { return conn.Close() })
	var closed *Rejection
	if !errors.As(err, &closed) || closed.Reason != reasons.Closed || closed.Answer != nil {
		t.Fatalf("peer that closed: %v", err)
	}

	// A replayed Ping: the swap refuses it and has answered it itself.
	st, err := ping.NewStamper(func() time.Time { return time.Unix(0, 0) }, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	stale := &ping.Sealer{Keys: c.ring, Stamper: st, Rand: sister.sealer.Rand, Node: proto.NodeID{4}}
	adm, err, ierr = admitIM(t, c, migration.Inbound{Protocol: proto.ModePing}, r, func(conn net.Conn) error {
		var res ping.Result
		return Initiate(conn, otherAddr, momAddr, stale, sister.verifier, &res)
	})
	var rj *Rejection
	if !errors.As(err, &rj) || rj.Reason != reasons.Replay || rj.Answer != nil || adm.Node != (proto.NodeID{4}) {
		t.Fatalf("replayed ping: %+v %v", adm, err)
	}
	var peer *RejectError
	if !errors.As(ierr, &peer) || peer.Code != proto.RejectReplay {
		t.Fatalf("initiator of the replay: %v", ierr)
	}
}
