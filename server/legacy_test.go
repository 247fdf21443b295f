package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
)

// startServer runs a server on 127.0.0.1 in-process until the test ends.
func startServer(t *testing.T) *Server {
	t.Helper()
	return startServerWith(t, Config{})
}

// startServerWith is startServer with cfg's settings (StateDir, Listen
// and Log are the test's).
func startServerWith(t *testing.T, cfg Config) *Server {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg.StateDir, cfg.Listen, cfg.Log = dir, "127.0.0.1:0", log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	s.Addr()
	return s
}

func adminCall(t *testing.T, s *Server, op string, args any) (any, error) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return s.handleAdmin(context.Background(), op, raw)
}

func mustAdmin(t *testing.T, s *Server, op string, args any) any {
	t.Helper()
	res, err := adminCall(t, s, op, args)
	if err != nil {
		t.Fatalf("%s %+v: %v", op, args, err)
	}
	return res
}

func setMode(t *testing.T, s *Server, mode string) {
	t.Helper()
	mustAdmin(t, s, admin.OpSetServer, admin.SetArgs{Attrs: []admin.Attr{{Name: "mode", Value: mode}}})
}

// legacyClient is a raw v1 MOM control connection from ip.
type legacyClient struct {
	t  *testing.T
	c  net.Conn
	sh *proto.ServerHello
}

func dialFrom(t *testing.T, s *Server, ip string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (lc *legacyClient) read() proto.Message {
	lc.t.Helper()
	if err := lc.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		lc.t.Fatal(err)
	}
	frame, err := proto.ReadFrame(lc.c, nil)
	if err != nil {
		lc.t.Fatalf("read: %v", err)
	}
	m, err := proto.Unmarshal(frame)
	if err != nil {
		lc.t.Fatalf("decode: %v", err)
	}
	return m
}

func legacyHello(t *testing.T, s *Server, ip, name string) *legacyClient {
	t.Helper()
	lc := &legacyClient{t: t, c: dialFrom(t, s, ip)}
	sh, ok := lc.read().(*proto.ServerHello)
	if !ok {
		t.Fatal("first frame is not a ServerHello")
	}
	lc.sh = sh
	if err := proto.WriteFrame(lc.c, &proto.LegacyHello{Name: name, IMPort: 15003, Versions: proto.VersionBitV1}); err != nil {
		t.Fatal(err)
	}
	return lc
}

func (lc *legacyClient) wantList(addrs ...string) {
	lc.t.Helper()
	ca, ok := lc.read().(*proto.ClusterAddrs)
	if !ok {
		lc.t.Fatal("expected ClusterAddrs")
	}
	var want []netip.Addr
	for _, a := range addrs {
		want = append(want, netip.MustParseAddr(a))
	}
	got := ca.Expand(1000)
	if len(got) != len(want) {
		lc.t.Fatalf("list %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			lc.t.Fatalf("list %v, want %v", got, want)
		}
	}
}

func (lc *legacyClient) wantReject(code proto.RejectCode, text string) {
	lc.t.Helper()
	rj, ok := lc.read().(*proto.Reject)
	if !ok {
		lc.t.Fatal("expected Reject")
	}
	if rj.Code != code || !strings.Contains(rj.Reason, text) {
		lc.t.Fatalf("reject code %d %q, want %d and %q", rj.Code, rj.Reason, code, text)
	}
}

func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not synchronisation
	}
}

func (s *Server) statsNow() *admin.LegacyStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.legacyStatsLocked()
}

func TestLegacyListPushAndModes(t *testing.T) {
	s := startServer(t)
	setMode(t, s, "legacy")
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n2", Mom: "127.0.0.2"})
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n3", Mom: "127.0.0.3"})

	a := legacyHello(t, s, "127.0.0.2", "n2")
	if a.sh.Mode != proto.ModeLegacy || a.sh.Versions != proto.VersionBitV1 {
		t.Fatalf("server hello mode %s versions %s", a.sh.Mode, migration.VersionsString(a.sh.Versions))
	}
	// The reply to the hello: the whole list, then the (empty) upgraded set.
	a.wantList("127.0.0.2", "127.0.0.3")
	if nu, ok := a.read().(*proto.NodeUpgraded); !ok || nu.Op != proto.UpgradedReplace || len(nu.Entries) != 0 {
		t.Fatalf("expected an empty NodeUpgraded replace")
	}
	// A legacy MOM without a name is known by its address.
	b := legacyHello(t, s, "127.0.0.3", "")
	b.wantList("127.0.0.2", "127.0.0.3")
	b.read()

	// Membership change: both get the new list.
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n9", Mom: "127.0.0.9"})
	a.wantList("127.0.0.2", "127.0.0.3", "127.0.0.9")
	b.wantList("127.0.0.2", "127.0.0.3", "127.0.0.9")
	mustAdmin(t, s, admin.OpSetNode, admin.SetArgs{Name: "n9", Attrs: []admin.Attr{{Name: "Mom", Value: "127.0.0.4"}}})
	a.wantList("127.0.0.2", "127.0.0.3", "127.0.0.4")
	b.wantList("127.0.0.2", "127.0.0.3", "127.0.0.4")
	// two hello replies, two pushes of 2 runs, two of 1 run
	waitCond(t, "push counters", func() bool { return s.statsNow().PushMessages == 6 })
	st := s.statsNow()
	if st.PushBytes != 2*20+2*28+2*20 || st.ListRuns != 1 || st.ListSessions != 2 || st.V1Sessions != 2 || st.V1Accepted != 2 {
		t.Fatalf("stats %+v", st)
	}

	// A node lookup on a v1 session, answered in v1.
	if err := proto.WriteFrame(a.c, &proto.NodeLookup{Ver: proto.V1, ID: 7, Name: "n3"}); err != nil {
		t.Fatal(err)
	}
	na, ok := a.read().(*proto.NodeAddress)
	if !ok || na.Ver != proto.V1 || na.ID != 7 || na.Status != proto.LookupFound || na.Addr.String() != "127.0.0.3" || na.Port != DefaultMomPort {
		t.Fatalf("lookup answer %+v", na)
	}

	// Unknown address; a PING hello in legacy mode.
	u := legacyHello(t, s, "127.0.0.8", "")
	u.wantReject(proto.RejectUnknownNode, "no node has address 127.0.0.8")
	v2c := &legacyClient{t: t, c: dialFrom(t, s, "127.0.0.3")}
	v2c.read()
	if err := proto.WriteFrame(v2c.c, &proto.Hello{Sealed: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	v2c.wantReject(proto.RejectNotAllowed, "legacy mode: PING hellos refused")

	// compat: the v1 sessions are told and stay.
	setMode(t, s, "compat")
	for _, c := range []*legacyClient{a, b} {
		if mm, ok := c.read().(*proto.ModeMsg); !ok || mm.Mode != proto.ModeCompat || mm.Ver != proto.V1 {
			t.Fatalf("expected Mode compat (v1)")
		}
	}
	// ping: told, then closed; nothing pushed any more; v1 refused.
	setMode(t, s, "ping")
	for _, c := range []*legacyClient{a, b} {
		if mm, ok := c.read().(*proto.ModeMsg); !ok || mm.Mode != proto.ModePing {
			t.Fatalf("expected Mode ping")
		}
		_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := proto.ReadFrame(c.c, nil); !errors.Is(err, io.EOF) {
			t.Fatalf("v1 session not closed in ping mode: %v", err)
		}
	}
	before := s.statsNow().PushMessages
	r := legacyHello(t, s, "127.0.0.2", "n2")
	r.wantReject(proto.RejectNotAllowed, "ping mode: legacy (v1) hello from 127.0.0.2 refused")
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n5", Mom: "127.0.0.5"})
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n5"})
	if st := s.statsNow(); st.PushMessages != before || st.V1Refused != 1 || st.V2Refused != 1 || st.ListSessions != 0 {
		t.Fatalf("ping mode: stats %+v (push messages before %d)", st, before)
	}
}

func TestNoDowngradeAndRollback(t *testing.T) {
	s := startServer(t)
	setMode(t, s, "compat")
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n2", Mom: "127.0.0.2"})
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n3", Mom: "127.0.0.3"})
	a := legacyHello(t, s, "127.0.0.2", "n2")
	a.wantList("127.0.0.2", "127.0.0.3")
	a.read()

	// n3 speaks PING only: the server marks it (as startSession does after a
	// v2-only hello) and tells the list-admitting MOM.
	s.mu.Lock()
	s.markUpgradedLocked(s.reg.byName["n3"])
	s.mu.Unlock()
	nu, ok := a.read().(*proto.NodeUpgraded)
	if !ok || nu.Op != proto.UpgradedAdd || len(nu.Entries) != 1 || nu.Entries[0].Addr.String() != "127.0.0.3" {
		t.Fatalf("expected NodeUpgraded add of 127.0.0.3")
	}
	// A legacy hello from the upgraded node's address is a downgrade.
	d := legacyHello(t, s, "127.0.0.3", "n3")
	d.wantReject(proto.RejectLegacyRefused, "node n3 is upgraded")
	res, err := adminCall(t, s, admin.OpListNode, admin.ListNodeArgs{Name: "n3"})
	if err != nil || !res.([]admin.NodeInfo)[0].Upgraded {
		t.Fatalf("n3 not shown upgraded: %v %v", res, err)
	}
	// The mark survives a restart of the registry (it is persisted).
	p, err := readStateDir(s.cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		if n.Name == "n3" && !n.Upgraded {
			t.Fatal("upgrade mark not persisted")
		}
	}
	// Only the administrator can set it back, and only to false.
	if _, err := adminCall(t, s, admin.OpSetNode, admin.SetArgs{Name: "n3", Attrs: []admin.Attr{{Name: "upgraded", Value: "true"}}}); admin.CodeOf(err) != admin.CodeBadValue {
		t.Fatalf("upgraded=true: %v", err)
	}
	mustAdmin(t, s, admin.OpSetNode, admin.SetArgs{Name: "n3", Attrs: []admin.Attr{{Name: "upgraded", Value: "false"}}})
	if nu, ok := a.read().(*proto.NodeUpgraded); !ok || nu.Op != proto.UpgradedRemove {
		t.Fatalf("expected NodeUpgraded remove")
	}
	ok3 := legacyHello(t, s, "127.0.0.3", "n3")
	ok3.wantList("127.0.0.2", "127.0.0.3")
	if st := s.statsNow(); st.Downgrades != 1 || st.Upgraded != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Bad set node requests change nothing.
	for _, attrs := range [][]admin.Attr{{{Name: "Mom", Value: "not-an-ip"}}, {{Name: "Mom", Value: "127.0.0.2"}}, {{Name: "state", Value: "up"}}, nil} {
		if _, err := adminCall(t, s, admin.OpSetNode, admin.SetArgs{Name: "n3", Attrs: attrs}); err == nil {
			t.Fatalf("set node n3 %+v accepted", attrs)
		}
	}
	if _, err := adminCall(t, s, admin.OpSetNode, admin.SetArgs{Name: "zz", Attrs: []admin.Attr{{Name: "upgraded", Value: "false"}}}); admin.CodeOf(err) != admin.CodeUnknownNode {
		t.Fatalf("unknown node: %v", err)
	}
}

func TestUpgradedChunkFitsAFrame(t *testing.T) {
	f := proto.Marshal(&proto.NodeUpgraded{Op: proto.UpgradedAdd, Entries: make([]proto.NodeAddr, upgradedChunk)})
	if len(f) > proto.MaxFrameSize {
		t.Fatalf("a full chunk is %d bytes, over the %d frame limit", len(f), proto.MaxFrameSize)
	}
	if _, err := proto.Unmarshal(f); err != nil {
		t.Fatal(err)
	}
	if upgradedChunk < 30000 {
		t.Fatalf("chunk of %d entries is needlessly small", upgradedChunk)
	}
}

// TestCostModelMatchesServer: the messages and bytes the real server pushes
// for a node add, on a fragmented address plan, are what the cost model of
// docs/perf/legacy.md computes.
func TestCostModelMatchesServer(t *testing.T) {
	s := startServer(t)
	setMode(t, s, "legacy")
	const n = 5
	var clients []*legacyClient
	for i := 0; i < n; i++ { // 127.0.0.2, .4, .6, ...: every address its own run
		ip := fmt.Sprintf("127.0.0.%d", 2+2*i)
		mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: fmt.Sprintf("n%d", i), Mom: ip})
	}
	for i := 0; i < n; i++ {
		c := legacyHello(t, s, fmt.Sprintf("127.0.0.%d", 2+2*i), "")
		c.read() // list
		c.read() // upgraded set
		clients = append(clients, c)
	}
	base := s.statsNow()
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "new", Mom: fmt.Sprintf("127.0.0.%d", 2+2*n)})
	for _, c := range clients {
		c.read()
	}
	nc := legacyHello(t, s, fmt.Sprintf("127.0.0.%d", 2+2*n), "new")
	nc.read()
	want := migration.LegacyAdd(migration.PlanFragmented, n)
	waitCond(t, "the add's pushes counted", func() bool { return s.statsNow().PushMessages-base.PushMessages == want.Messages })
	if got := s.statsNow().PushBytes - base.PushBytes; got != want.Bytes {
		t.Fatalf("server pushed %d bytes for an add to %d nodes, the model says %d", got, n, want.Bytes)
	}
	// In ping mode an add pushes nothing to the MOMs there are.
	setMode(t, s, "ping")
	before := s.statsNow().PushMessages
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "late", Mom: "127.0.0.99"})
	if got := s.statsNow().PushMessages; got != before {
		t.Fatalf("ping mode: an add pushed %d lists", got-before)
	}
}
