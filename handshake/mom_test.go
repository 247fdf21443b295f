package handshake

import (
	"crypto/rand"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

type fakeServer struct {
	ident *keys.Identity
	key   *keys.Key
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	ident, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.NewKey(rand.Reader, now, func(keys.KeyID) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	return &fakeServer{ident: ident, key: k}
}

// serve plays the server on c: ServerHello, then answers with reply(in),
// where in is the decoded Enroll or Hello proof check result.
func (s *fakeServer) serve(t *testing.T, c net.Conn, reply func(m proto.Message, proofOK bool) proto.Message) chan error {
	done := make(chan error, 1)
	go func() {
		defer c.Close()
		sh := &proto.ServerHello{ServerKey: s.ident.Public, Challenge: [32]byte{1, 2, 3}, Mode: proto.ModePing, Versions: proto.VersionBitV2}
		if err := proto.WriteFrame(c, sh); err != nil {
			done <- err
			return
		}
		frame, err := proto.ReadFrame(c, nil)
		if err != nil {
			done <- err
			return
		}
		m, err := proto.Unmarshal(frame)
		if err != nil {
			done <- err
			return
		}
		ok := false
		switch m := m.(type) {
		case *proto.Enroll:
			plain, opened := box.Open(nil, m.Sealed, &m.Nonce, &m.NodeKey, &s.ident.Private)
			if opened {
				p, err := proto.DecodeEnrollProof(plain)
				ok = err == nil && p.Challenge == sh.Challenge
			}
		case *proto.Hello:
			ok = true
		}
		done <- proto.WriteFrame(c, reply(m, ok))
	}()
	return done
}

func (s *fakeServer) welcome(t *testing.T, nodePub [32]byte) *proto.Welcome {
	wk, err := keys.Wrap(rand.Reader, s.key, keys.StateActive, &nodePub, &s.ident.Private)
	if err != nil {
		t.Fatal(err)
	}
	return &proto.Welcome{NodeID: proto.NodeID{9}, Name: "n1", Mode: proto.ModePing, Keys: []proto.WrappedKey{{KeyID: uint32(wk.ID), State: uint8(wk.State), Nonce: wk.Nonce, Sealed: wk.Sealed}}}
}

func params(t *testing.T, serverPub [32]byte) *MomParams {
	t.Helper()
	ident, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := keys.IssueToken(rand.Reader, now, time.Hour, "n1", serverPub)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.ParseToken(text)
	if err != nil {
		t.Fatal(err)
	}
	return &MomParams{Ident: ident, Rand: rand.Reader, IMPort: 15003, Versions: proto.VersionBitV2, Token: &tok}
}

func TestEnrollAndUnwrap(t *testing.T) {
	srv := newFakeServer(t)
	p := params(t, srv.ident.Public)
	client, server := net.Pipe()
	done := srv.serve(t, server, func(m proto.Message, ok bool) proto.Message {
		if !ok {
			return &proto.Reject{Code: proto.RejectAuth, Reason: "bad proof"}
		}
		return srv.welcome(t, p.Ident.Public)
	})
	sh, w, err := Authenticate(client, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ring, err := Keyring(w, &sh.ServerKey, p.Ident, now)
	if err != nil {
		t.Fatal(err)
	}
	if a := ring.Active(); a == nil || a.ID != srv.key.ID || a.Secret != srv.key.Secret {
		t.Fatalf("active key %+v, want %s", a, srv.key.ID)
	}
	// A key wrapped by someone else than the server does not unwrap.
	other := newFakeServer(t)
	if _, err := Keyring(other.welcome(t, p.Ident.Public), &sh.ServerKey, p.Ident, now); !errors.Is(err, keys.ErrUnwrap) {
		t.Fatalf("key from another server: %v", err)
	}
}

func TestServerKeyPinned(t *testing.T) {
	srv, impostor := newFakeServer(t), newFakeServer(t)
	p := params(t, srv.ident.Public)
	client, server := net.Pipe()
	impostor.serve(t, server, func(proto.Message, bool) proto.Message { return &proto.Reject{} })
	if _, _, err := Authenticate(client, p); !errors.Is(err, ErrServerKey) {
		t.Fatalf("token pinned to another server: %v", err)
	}
	client.Close()
	// Later starts pin the key recorded at enrollment.
	p.Token, p.ServerKey = nil, srv.ident.Public
	client, server = net.Pipe()
	impostor.serve(t, server, func(proto.Message, bool) proto.Message { return &proto.Reject{} })
	if _, _, err := Authenticate(client, p); !errors.Is(err, ErrServerKey) {
		t.Fatalf("hello to another server: %v", err)
	}
	client.Close()
}

func TestRejectFinality(t *testing.T) {
	srv := newFakeServer(t)
	for _, tc := range []struct {
		code      proto.RejectCode
		enrolling bool
		final     bool
		revoked   bool
	}{
		{proto.RejectTokenUsed, true, true, false},
		{proto.RejectTokenExpired, true, true, false},
		{proto.RejectAddrMismatch, true, true, false},
		{proto.RejectInternal, true, false, false},
		{proto.RejectRateLimited, true, false, false},
		{proto.RejectAddrMismatch, false, false, false}, // a running MOM keeps retrying
		{proto.RejectUnknownNode, false, false, false},  // perhaps a server with the wrong state
		{proto.RejectRevoked, false, false, true},       // deleted: the MOM stops
		{proto.RejectRevoked, true, false, false},
	} {
		p := params(t, srv.ident.Public)
		if !tc.enrolling {
			p.Token, p.ServerKey = nil, srv.ident.Public
		}
		client, server := net.Pipe()
		done := srv.serve(t, server, func(proto.Message, bool) proto.Message { return &proto.Reject{Code: tc.code, Reason: "no"} })
		_, _, err := Authenticate(client, p)
		client.Close()
		if serr := <-done; serr != nil {
			t.Fatalf("fake server: %v", serr)
		}
		var rj *RejectError
		if !errors.As(err, &rj) || rj.Code != tc.code {
			t.Fatalf("code %d: %v", tc.code, err)
		}
		if errors.Is(err, ErrFinal) != tc.final {
			t.Fatalf("code %d enrolling %v: final = %v, want %v", tc.code, tc.enrolling, !tc.final, tc.final)
		}
		if errors.Is(err, ErrRevoked) != tc.revoked {
			t.Fatalf("code %d enrolling %v: revoked = %v, want %v", tc.code, tc.enrolling, !tc.revoked, tc.revoked)
		}
	}
}
