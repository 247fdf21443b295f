package group

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

func testCredentials(t *testing.T, ca *CA, member string, allow func(string) error) *Credentials {
	t.Helper()
	c, err := NewCredentials(CredentialsConfig{CA: ca, Member: member, Now: func() time.Time { return t0 },
		Rand: &countingRand{n: byte(len(member))}, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs a TLS handshake over an in-memory pipe and returns both
// sides' errors and the server's view of the connection.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, st tls.ConnectionState) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	s, c := tls.Server(a, server), tls.Client(b, client)
	done := make(chan error, 1)
	go func() {
		err := s.Handshake()
		if err != nil {
			a.Close() // unblock the client
		}
		done <- err
	}()
	clientErr = c.Handshake()
	if clientErr != nil {
		b.Close()
	} else {
		// TLS 1.3: the server verifies the client's certificate after
		// the client's handshake returns; a read makes the outcome visible.
		go c.Read(make([]byte, 1))
	}
	serverErr = <-done
	return serverErr, clientErr, s.ConnectionState()
}

func TestMembersHandshake(t *testing.T) {
	ca := testCA(t, 1)
	s1, s2 := testCredentials(t, ca, "s1", nil), testCredentials(t, ca, "s2", nil)
	serr, cerr, st := handshake(t, s1.ServerConfig(), s2.ClientConfig())
	if serr != nil || cerr != nil {
		t.Fatalf("member handshake: server %v, client %v", serr, cerr)
	}
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != ALPNRaft {
		t.Fatalf("version %x protocol %q", st.Version, st.NegotiatedProtocol)
	}
	if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "s2" {
		t.Fatal("server does not see the client's member certificate")
	}
}

func TestNonMemberRefused(t *testing.T) {
	ca, other := testCA(t, 1), testCA(t, 99)
	s1 := testCredentials(t, ca, "s1", nil)
	intruder := testCredentials(t, other, "s2", nil)
	// An intruder dialling a member, trusting any server: the member
	// refuses its certificate.
	lax := intruder.ClientConfig()
	lax.VerifyConnection = nil
	if serr, _, _ := handshake(t, s1.ServerConfig(), lax); !errors.Is(serr, ErrNotMember) {
		t.Fatalf("member accepted a foreign group's certificate: %v", serr)
	}
	// With its own checks the intruder's client refuses the member too.
	if _, cerr, _ := handshake(t, s1.ServerConfig(), intruder.ClientConfig()); !errors.Is(cerr, ErrNotMember) {
		t.Fatalf("intruder's client: %v", cerr)
	}
	// A member dialling an intruder: the member refuses the server.
	if _, cerr, _ := handshake(t, intruder.ServerConfig(), s1.ClientConfig()); !errors.Is(cerr, ErrNotMember) {
		t.Fatalf("member accepted a foreign group's server: %v", cerr)
	}
	// No certificate at all, offering the raft protocol.
	bare := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{ALPNRaft}}
	if serr, _, _ := handshake(t, s1.ServerConfig(), bare); serr == nil {
		t.Fatal("member accepted a raft client without a certificate")
	}
	// A protocol the port does not speak.
	other2 := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{"h2"}}
	if serr, _, _ := handshake(t, s1.ServerConfig(), other2); !errors.Is(serr, ErrNoALPN) {
		t.Fatalf("unknown protocol: %v", serr)
	}
	// TLS 1.2 is refused.
	old := &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true, NextProtos: []string{ALPNJoin}}
	if serr, _, _ := handshake(t, s1.ServerConfig(), old); serr == nil {
		t.Fatal("member accepted TLS 1.2")
	}
}

func TestAllowRefusesRemovedMember(t *testing.T) {
	ca := testCA(t, 1)
	s1 := testCredentials(t, ca, "s1", func(m string) error {
		if m == "s3" {
			return fmt.Errorf("not in the configuration")
		}
		return nil
	})
	s3 := testCredentials(t, ca, "s3", nil)
	if serr, _, _ := handshake(t, s1.ServerConfig(), s3.ClientConfig()); !errors.Is(serr, ErrNotMember) {
		t.Fatalf("Allow did not refuse s3: %v", serr)
	}
}

func TestJoinerChecksPin(t *testing.T) {
	ca := testCA(t, 1)
	s1 := testCredentials(t, ca, "s1", nil)
	now := func() time.Time { return t0 }
	var seen []byte
	serr, cerr, st := handshake(t, s1.ServerConfig(), JoinClientConfig(ca.Fingerprint(), now, &seen))
	if serr != nil || cerr != nil || st.NegotiatedProtocol != ALPNJoin {
		t.Fatalf("join handshake: server %v, client %v, protocol %q", serr, cerr, st.NegotiatedProtocol)
	}
	if string(seen) != string(ca.Public()) {
		t.Fatal("joiner did not report the group CA key")
	}
	if _, cerr, _ := handshake(t, s1.ServerConfig(), JoinClientConfig(testCA(t, 99).Fingerprint(), now, nil)); !errors.Is(cerr, ErrGroupMismatch) {
		t.Fatalf("joiner accepted a member of another group: %v", cerr)
	}
}

func TestCertificateRenewedAtHalfLife(t *testing.T) {
	ca := testCA(t, 1)
	now := t0
	c, err := NewCredentials(CredentialsConfig{CA: ca, Member: "s1", Now: func() time.Time { return now }, Rand: &countingRand{}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := c.certificate()
	now = now.Add(MemberCertLifetime/2 - time.Second)
	if same, _ := c.certificate(); same != first {
		t.Fatal("renewed before half of the lifetime")
	}
	now = now.Add(2 * time.Second)
	renewed, _ := c.certificate()
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatal("not renewed after half of the lifetime")
	}
	now = t0.Add(-time.Hour) // the clock stepped back
	if back, _ := c.certificate(); back == renewed {
		t.Fatal("a clock stepped back keeps a certificate minted in its future")
	}
}
