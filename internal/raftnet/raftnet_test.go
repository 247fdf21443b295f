package raftnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
)

// secretCommand is the write of a rotation step that saves the keyring: a
// state_records command carrying keyring.json whole, with a cluster key
// whose secret is a known pattern, encoded as the group replicates it.
func secretCommand(t *testing.T) ([]byte, [32]byte) {
	t.Helper()
	k := &keys.Key{ID: 0x5ec7e700, State: keys.StateNext, Created: t0}
	copy(k.Secret[:], "momgate-known-secret-0123456789!")
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	file, err := keys.EncodeKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	b, err := replica.Encode(replica.Entry{At: t0, Cmd: &replica.StateRecords{Why: "rotation next-saved",
		Records: []replica.StateRecord{{Kind: replica.RecordFile, Key: "keyring.json", Value: file}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b, k.Secret
}

// replicateThroughTap runs a leader and a standby whose every byte from
// the leader passes through a tap, applies cmd and returns what the tap saw.
func replicateThroughTap(t *testing.T, leaderTrans, standbyTrans raft.Transport, standbyAddr string, cmd []byte) []byte {
	t.Helper()
	p := newTap(t, "127.0.0.3:0", standbyAddr)
	leader, _ := startRaft(t, "s1", leaderTrans, true)
	_, standbyFSM := startRaft(t, "s2", standbyTrans, false)
	waitFor(t, "s1 to lead", func() bool { return leader.State() == raft.Leader })
	// The leader knows the standby only by the tap's address.
	if err := leader.AddNonvoter("s2", raft.ServerAddress(p.ln.Addr().String()), 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Apply(cmd, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the standby to apply the command", func() bool { return standbyFSM.has(cmd) })
	return p.captured()
}

// leaks returns the forms of secret found in wire: raw, base64 (as the
// command's JSON carries it), hex, or its first half.
func leaks(wire []byte, secret [32]byte) []string {
	var out []string
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"raw", secret[:]},
		{"base64", []byte(base64.StdEncoding.EncodeToString(secret[:]))},
		{"hex", []byte(hex.EncodeToString(secret[:]))},
		{"first half", secret[:16]},
	} {
		if bytes.Contains(wire, f.b) {
			out = append(out, f.name)
		}
	}
	return out
}

func TestNoPlaintextOnTheWire(t *testing.T) {
	cmd, secret := secretCommand(t)
	ca := testCA(t)
	l1, l2 := listen(t, ca, "s1", "127.0.0.1:0"), listen(t, ca, "s2", "127.0.0.2:0")
	wire := replicateThroughTap(t, NewTransport(l1, TransportConfig{}), NewTransport(l2, TransportConfig{}), l2.Addr().String(), cmd)
	if len(wire) < len(cmd) {
		t.Fatalf("the tap saw %d bytes, less than the command itself", len(wire))
	}
	// TLS records start 0x17 0x03 0x03 (application data); no msgpack
	// of raft's RPCs in the clear.
	if !bytes.Contains(wire, []byte{0x17, 0x03, 0x03}) {
		t.Error("no TLS application data record on the wire")
	}
	if found := leaks(wire, secret); len(found) > 0 {
		t.Errorf("the key secret is on the wire (%v) in %d captured bytes", found, len(wire))
	}
	if bytes.Contains(wire, []byte("keyring.json")) || bytes.Contains(wire, []byte("next-saved")) {
		t.Error("command text on the wire")
	}
}

// TestPlainTCPWouldLeak is the control of TestNoPlaintextOnTheWire: with
// raft's own plain TCP transport the same tap does find the secret, so the
// search above would have found it.
func TestPlainTCPWouldLeak(t *testing.T) {
	cmd, secret := secretCommand(t)
	plain := func(addr string) *raft.NetworkTransport {
		tr, err := raft.NewTCPTransportWithLogger(addr, nil, 3, 10*time.Second, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	t1, t2 := plain("127.0.0.1:0"), plain("127.0.0.2:0")
	wire := replicateThroughTap(t, t1, t2, string(t2.LocalAddr()), cmd)
	if found := leaks(wire, secret); len(found) == 0 {
		t.Fatalf("plain TCP: the secret was not found in %d captured bytes; the search proves nothing", len(wire))
	}
}

func TestNonMemberRefused(t *testing.T) {
	ca := testCA(t)
	l1 := listen(t, ca, "s1", "127.0.0.1:0")
	leader, fsm := startRaft(t, "s1", NewTransport(l1, TransportConfig{}), true)
	waitFor(t, "s1 to lead", func() bool { return leader.State() == raft.Leader })
	term := leader.CurrentTerm()

	// A member of another group: same member name, its own CA.
	intruder := listen(t, testCA(t), "s2", "127.0.0.2:0")
	it := NewTransport(intruder, TransportConfig{Timeout: 2 * time.Second})
	defer it.Close()
	target := raft.ServerAddress(l1.Addr().String())
	vote := &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("s2"), Addr: []byte(intruder.Addr().String())},
		Term: term + 1000, LastLogIndex: 1 << 40, LastLogTerm: term + 1000}
	if err := it.RequestVote("s1", target, vote, &raft.RequestVoteResponse{}); err == nil {
		t.Fatal("a non-member's vote request was answered")
	}
	appendReq := &raft.AppendEntriesRequest{RPCHeader: vote.RPCHeader, Term: term + 1000,
		Entries: []*raft.Log{{Index: 1 << 40, Term: term + 1000, Type: raft.LogCommand, Data: []byte("forged")}}}
	if err := it.AppendEntries("s1", target, appendReq, &raft.AppendEntriesResponse{}); err == nil {
		t.Fatal("a non-member's entries were answered")
	}
	// Plain TCP, no TLS at all.
	plain, err := raft.NewTCPTransportWithLogger("127.0.0.4:0", nil, 1, 2*time.Second, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.RequestVote("s1", target, vote, &raft.RequestVoteResponse{}); err == nil {
		t.Fatal("a plain TCP vote request was answered")
	}
	waitFor(t, "the refusals to be counted", func() bool { return l1.Refused() >= 3 })
	if leader.CurrentTerm() != term || leader.State() != raft.Leader {
		t.Fatalf("the non-members moved the term: %d -> %d, state %s", term, leader.CurrentTerm(), leader.State())
	}
	if fsm.has([]byte("forged")) {
		t.Fatal("a forged entry was applied")
	}
	// And this member refuses to talk to the intruder as a server.
	if _, err := l1.Dial(raft.ServerAddress(intruder.Addr().String()), 2*time.Second); !errors.Is(err, group.ErrNotMember) {
		t.Fatalf("dialling a non-member: %v", err)
	}
}

func TestTransportRecordsPeerContact(t *testing.T) {
	ca := testCA(t)
	l1, l2 := listen(t, ca, "s1", "127.0.0.1:0"), listen(t, ca, "s2", "127.0.0.2:0")
	tr1 := NewTransport(l1, TransportConfig{})
	leader, _ := startRaft(t, "s1", tr1, true)
	startRaft(t, "s2", NewTransport(l2, TransportConfig{}), false)
	waitFor(t, "s1 to lead", func() bool { return leader.State() == raft.Leader })
	if err := leader.AddNonvoter("s2", raft.ServerAddress(l2.Addr().String()), 0, 10*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := leader.Apply([]byte{byte(i)}, 10*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
	}
	last := leader.LastIndex()
	waitFor(t, "s2's reported log to reach the leader's", func() bool {
		p := tr1.Peers()["s2"]
		return p.LastLog == last && !p.LastContact.IsZero() && p.Failures == 0
	})
	l2.Close() // s2's process dies
	waitFor(t, "failures to s2 to be counted", func() bool { return tr1.Peers()["s2"].Failures > 0 })
}

func TestJoinConnectionsGoToOnJoin(t *testing.T) {
	ca := testCA(t)
	got := make(chan string, 1)
	l, err := Listen(Config{Listen: "127.0.0.1:0", Credentials: creds(t, ca, "s1"),
		OnJoin: func(ctx context.Context, c *tls.Conn) {
			b, _ := io.ReadAll(io.LimitReader(c, 5))
			got <- string(b)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, caPub, err := DialJoin(ctx, l.Addr().String(), ca.Fingerprint(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !bytes.Equal(caPub, ca.Public()) {
		t.Fatal("DialJoin did not return the group CA key")
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "hello" {
		t.Fatalf("OnJoin read %q", s)
	}
	// A token pinning another group does not get through.
	if _, _, err := DialJoin(ctx, l.Addr().String(), testCA(t).Fingerprint(), time.Now); !errors.Is(err, group.ErrGroupMismatch) {
		t.Fatalf("join with a wrong pin: %v", err)
	}
	// A layer without OnJoin refuses joiners.
	l2 := listen(t, ca, "s2", "127.0.0.2:0")
	c2, _, err := DialJoin(ctx, l2.Addr().String(), ca.Fingerprint(), time.Now)
	if err == nil {
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c2.Read(make([]byte, 1)); err == nil {
			t.Fatal("a member without OnJoin served a joiner")
		}
		c2.Close()
	}
	waitFor(t, "the refused join to be counted", func() bool { return l2.Refused() == 1 })
}

func TestCloseClosesEverything(t *testing.T) {
	ca := testCA(t)
	l1, l2 := listen(t, ca, "s1", "127.0.0.1:0"), listen(t, ca, "s2", "127.0.0.2:0")
	c, err := l1.Dial(raft.ServerAddress(l2.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in, err := l2.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if la := c.LocalAddr().(*net.TCPAddr); !la.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("dialled from %s, not from the member's own address", la)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	in.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := in.Read(make([]byte, 1)); err == nil {
		t.Fatal("an accepted connection survived Close")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the peer's connection stayed open after Close")
	}
	if _, err := l2.Accept(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if _, err := l2.Dial(raft.ServerAddress(l1.Addr().String()), time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
