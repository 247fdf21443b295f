package handshake

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// sessionParams are a server's or a MOM's sealed-session parameters on the
// wall clock.
func sessionParams() *SessionParams { return &SessionParams{Now: time.Now} }

// momSession runs the MOM half of a control connection that speaks sealed
// sessions: hello, Welcome with its trailer, session swap.
func momSession(t *testing.T, c *cluster, conn net.Conn, p *MomParams) (*session.Session, *proto.WelcomeSessionProof, error) {
	t.Helper()
	rec := NewRecorder(conn)
	sh, err := ReadServerHello(rec)
	if err != nil {
		return nil, nil, err
	}
	w, err := Prove(rec, sh, p)
	if err != nil {
		return nil, nil, err
	}
	transcript := rec.Stop()
	ws, err := OpenWelcomeSession(w, &sh.ServerKey, p.Ident, &sh.Challenge)
	if err != nil || ws == nil {
		return nil, ws, err
	}
	b, err := session.NewBinding(&p.Ident.Private, &sh.ServerKey, transcript)
	if err != nil {
		return nil, ws, err
	}
	cfg := session.Config{Channel: session.ChannelControl, Rand: p.Rand, Binding: b, ExpectNode: sh.ServerID}
	var res ping.Result
	s, err := InitiateSession(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, cfg, time.Now, &res)
	return s, ws, err
}

// TestServeSealedSession: a MOM that proves it speaks sealed sessions gets
// the Welcome's trailer (with im_security) and an encrypt session bound to
// both identities; the frames both seal open at the other.
func TestServeSealedSession(t *testing.T) {
	c := newCluster(t)
	p := params(t, c.srv.ident.Public)
	p.Sessions = true
	sp := c.params()
	sp.Sessions = sessionParams()
	conn, done := c.serveWith(t, sp)
	ms, ws, err := momSession(t, c, conn, p)
	if err != nil {
		t.Fatal(err)
	}
	if ws == nil || ws.Flags != proto.WelcomeSealed|proto.WelcomeFloorProbe || ws.IMSecurity != 2 || ms == nil || ms.Protection() != session.Encrypt {
		t.Fatalf("trailer %+v, session %v", ws, ms)
	}
	r := <-done
	if r.err != nil || r.a.Session == nil || !c.reg.speaks || !r.a.FloorProbe {
		t.Fatalf("server: %+v %v", r.a, r.err)
	}
	frame := proto.Marshal(&proto.DenySet{})
	rec, err := r.a.Session.SealFrame(nil, frame, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ms.OpenRecord(rec, nil, time.Now())
	if err != nil || string(got) != string(frame) {
		t.Fatalf("server to MOM: %v", err)
	}
}

// TestServeSealedRefusals: a MOM that proved it speaks sealed sessions and
// then sends a plain Ping is refused as a downgrade; a node known to speak
// them is refused a Hello without the capability; the Welcome's trailer
// cannot be moved to another connection.
func TestServeSealedRefusals(t *testing.T) {
	c := newCluster(t)
	sp := c.params()
	sp.Sessions = sessionParams()
	t.Run("plain ping after the capability", func(t *testing.T) {
		p := params(t, c.srv.ident.Public)
		p.Sessions = true
		conn, done := c.serveWith(t, sp)
		if _, _, err := Authenticate(conn, p); err != nil {
			t.Fatal(err)
		}
		var res ping.Result
		err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res)
		var rj *RejectError
		if !errors.As(err, &rj) || rj.Code != proto.RejectSessionDowngrade {
			t.Fatalf("plain ping: %v", err)
		}
		if r := <-done; !isReason(r.err, reasons.SessionDowngrade) {
			t.Fatalf("server: %v", r.err)
		}
	})
	t.Run("hello without the capability from a sealed node", func(t *testing.T) {
		c.reg.sealedBefore = true
		defer func() { c.reg.sealedBefore = false }()
		p := params(t, c.srv.ident.Public)
		conn, done := c.serveWith(t, sp)
		_, _, err := Authenticate(conn, p)
		var rj *RejectError
		if !errors.As(err, &rj) || rj.Code != proto.RejectSessionDowngrade {
			t.Fatalf("hello: %v", err)
		}
		if r := <-done; !isReason(r.err, reasons.SessionDowngrade) {
			t.Fatalf("server: %v", r.err)
		}
	})
	t.Run("trailer of another connection", func(t *testing.T) {
		p := params(t, c.srv.ident.Public)
		p.Sessions = true
		conn, done := c.serveWith(t, sp)
		sh, w, err := Authenticate(conn, p)
		if err != nil {
			t.Fatal(err)
		}
		other := sh.Challenge
		other[0] ^= 1
		if _, err := OpenWelcomeSession(w, &sh.ServerKey, p.Ident, &other); !errors.Is(err, session.ErrAuth) {
			t.Fatalf("trailer under another challenge: %v", err)
		}
		w.Session.Sealed[3] ^= 1
		if _, err := OpenWelcomeSession(w, &sh.ServerKey, p.Ident, &sh.Challenge); !errors.Is(err, session.ErrAuth) {
			t.Fatalf("damaged trailer: %v", err)
		}
		conn.Close()
		<-done
	})
	t.Run("old MOM, no capability: plain swap", func(t *testing.T) {
		p := params(t, c.srv.ident.Public)
		conn, done := c.serveWith(t, sp)
		_, w, err := Authenticate(conn, p)
		if err != nil || w.Session != nil {
			t.Fatalf("welcome %+v %v", w, err)
		}
		var res ping.Result
		if err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res); err != nil {
			t.Fatal(err)
		}
		if r := <-done; r.err != nil || r.a.Session != nil {
			t.Fatalf("server: %+v %v", r.a, r.err)
		}
	})
}

// TestRecorder: the recorder keeps what went by in both directions until
// Stop, and nothing after.
func TestRecorder(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := NewRecorder(a)
	go func() {
		_, _ = b.Write([]byte("in"))
		buf := make([]byte, 3)
		_, _ = io.ReadFull(b, buf)
		_, _ = b.Write([]byte("late"))
	}()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write([]byte("out")); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Stop()); got != "inout" {
		t.Fatalf("recorded %q", got)
	}
	late := make([]byte, 4)
	if _, err := io.ReadFull(r, late); err != nil {
		t.Fatal(err)
	}
	if got := string(r.Stop()); got != "inout" {
		t.Fatalf("recorded after Stop: %q", got)
	}
}

func isReason(err error, want reasons.Reason) bool {
	var rj *Rejection
	return errors.As(err, &rj) && rj.Reason == want
}

// TestAdmitIMSessions: a SessionPing to a responder that speaks sealed
// sessions gets a session at the stronger of the two minimums; one to a
// responder that does not is refused with code 1 (the fallback trigger);
// a plain Ping from a marked sister is refused as a downgrade, from an
// unmarked one admitted.
func TestAdmitIMSessions(t *testing.T) {
	c := newCluster(t)
	sister := newPeer(t, c.ring, proto.NodeID{4})
	marks := session.NewMarks(nil)
	r := &IMResponder{Sealer: c.server.sealer, Verifier: c.server.verifier,
		Sessions: &IMSessions{SessionParams: *sessionParams(), Min: session.Auth, Marks: marks}}
	in := migration.Inbound{Protocol: proto.ModePing}
	sessionFrom := func(min session.Protection, got **session.Session) func(net.Conn) error {
		return func(conn net.Conn) error {
			var res ping.Result
			s, err := InitiateSession(conn, otherAddr, momAddr, sister.sealer, sister.verifier,
				session.Config{Channel: session.ChannelIM, Min: min, Rand: rand.Reader}, time.Now, &res)
			*got = s
			return err
		}
	}
	var s *session.Session
	adm, err, ierr := admitIM(t, c, in, r, sessionFrom(session.None, &s))
	if err != nil || ierr != nil || !adm.SessionSwap || adm.Session == nil || adm.Session.Protection() != session.Auth || s.Protection() != session.Auth || adm.Timestamp == 0 {
		t.Fatalf("session ping: %+v %v %v", adm, err, ierr)
	}
	adm, err, ierr = admitIM(t, c, in, r, sessionFrom(session.Encrypt, &s))
	if err != nil || ierr != nil || adm.Session.Protection() != session.Encrypt {
		t.Fatalf("encrypt offer: %+v %v %v", adm, err, ierr)
	}
	old := &IMResponder{Sealer: c.server.sealer, Verifier: c.server.verifier}
	_, err, ierr = admitIM(t, c, in, old, sessionFrom(session.None, &s))
	var rj *RejectError
	if !errors.As(ierr, &rj) || rj.Code != proto.RejectMalformed || !isReason(err, reasons.Malformed) {
		t.Fatalf("session ping to a responder without sessions: %v / %v", err, ierr)
	}
	pingFrom := func(conn net.Conn) error {
		var res ping.Result
		return Initiate(conn, otherAddr, momAddr, sister.sealer, sister.verifier, &res)
	}
	if _, err, ierr := admitIM(t, c, in, r, pingFrom); err != nil || ierr != nil {
		t.Fatalf("plain ping of an unmarked sister: %v %v", err, ierr)
	}
	marks.Mark(proto.NodeID{4}, proto.Addr{})
	_, err, ierr = admitIM(t, c, in, r, pingFrom)
	if !errors.As(ierr, &rj) || rj.Code != proto.RejectSessionDowngrade || !isReason(err, reasons.SessionDowngrade) {
		t.Fatalf("plain ping of a marked sister: %v / %v", err, ierr)
	}
}
