package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/replica"
)

// logCatcher keeps the messages of the warnings logged through it.
type logCatcher struct {
	mu    sync.Mutex
	warns []string
}

func (c *logCatcher) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }

func (c *logCatcher) Fire(e *logrus.Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.warns = append(c.warns, e.Message+" node="+e.Data["node"].(string))
	return nil
}

func (c *logCatcher) warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warns...)
}

// errCrash is the panic of the crash hook of these tests: the server
// "dies" at the step, its files as the step left them.
var errCrash = errors.New("crash point")

// closeServer releases what a server that died holds, so that the next
// one opens the same state directory, as after a kill -9.
func closeServer(s *Server) {
	s.rot.close()
	s.denies.close()
	s.states.close()
	s.base.Close()
}

// crashAt is a CrashAt hook that panics with errCrash at step.
func crashAt(step string) func(string) {
	return func(s string) {
		if s == step {
			panic(errCrash)
		}
	}
}

// untilCrash runs op, which must die at its crash point (errCrash).
func untilCrash(t *testing.T, what string, op func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != errCrash {
			t.Fatalf("%s did not reach its crash point: %v", what, r)
		}
	}()
	op()
}

// TestHalfDeletedNodeShown: a server dying at delete-denied (the deny
// entry committed, the registry's removal not) leaves the node registered
// and denied. After the restart list node shows it as deleting, with a
// comment naming the command that finishes the delete, the start logs a
// warning naming it, the nodes gauge counts it, its Hello is refused as
// revoked, and the prune keeps its deny entry; delete node again
// completes it.
func TestHalfDeletedNodeShown(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Now: clock.Now,
		CrashAt: crashAt("delete-denied")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.base.Close() })
	ctx := context.Background()
	res, err := s.createNode(ctx, admin.CreateNodeArgs{Name: "cn03", Mom: "127.0.0.53"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.createNode(ctx, admin.CreateNodeArgs{Name: "cn01", Mom: "127.0.0.51"}); err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.Parse(res.Node.ID)
	untilCrash(t, "delete node", func() { _, _ = s.deleteNode("cn03") })
	closeServer(s)

	// The restart.
	catch := &logCatcher{}
	log := quietLog()
	log.AddHook(catch)
	clock.t = clock.t.Add(time.Minute)
	s2, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: log, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.base.Close() })
	wantWarn := `node denied but still registered: a delete node did not complete; run momgate-qmgr -c "delete node cn03" to finish it node=cn03`
	if w := catch.warnings(); !containsString(w, wantWarn) || len(w) != 1 {
		t.Fatalf("start warnings %q, want only %q", w, wantWarn)
	}
	raw, err := adminCall(t, s2, admin.OpListNode, admin.ListNodeArgs{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []admin.NodeInfo
	if err := json.Unmarshal(b, &nodes); err != nil {
		t.Fatal(err)
	}
	wantComment := `denied, delete incomplete (delete node at 2026-12-01T10:00:00Z): run "delete node cn03" again`
	if len(nodes) != 2 || nodes[0].Name != "cn01" || nodes[1].Name != "cn03" {
		t.Fatalf("list node: %+v", nodes)
	}
	if n := nodes[0]; n.State != admin.NodeEnrolling || n.Denied || n.Comment != "" {
		t.Fatalf("cn01, not deleted: %+v", n)
	}
	if n := nodes[1]; n.State != admin.NodeDeleting || !n.Denied || n.Comment != wantComment {
		t.Fatalf("cn03, half deleted: state %q denied %v comment %q", n.State, n.Denied, n.Comment)
	}
	if !strings.Contains(string(b), `"state":"deleting"`) || !strings.Contains(string(b), `"denied":true`) {
		t.Fatalf("list node JSON: %s", b)
	}
	if one, err := s2.listNodes("cn03"); err != nil || len(one) != 1 || one[0].State != admin.NodeDeleting || one[0].Comment != wantComment {
		t.Fatalf("list node cn03: %+v, %v", one, err)
	}
	if got := s2.nodeStateCounts(); got["deleting"] != 1 || got["enrolling"] != 1 || got["down"] != 0 || got["up"] != 0 {
		t.Fatalf("nodes gauge: %v", got)
	}

	// Refused as revoked, with or without its deny entry; the prune keeps
	// the entry of a node still registered, whatever its keys.
	hello := func(s *Server) error {
		_, _, _, err := s.helloNode(proto.NodeID(id), netip.MustParseAddr("127.0.0.53"))
		return err
	}
	revoked := func(what string, err error, msg string) {
		t.Helper()
		var rj *handshake.Rejection
		if !errors.As(err, &rj) || rj.Reason != reasons.Revoked || !strings.Contains(err.Error(), msg) {
			t.Fatalf("%s: hello of cn03: %v", what, err)
		}
	}
	revoked("half deleted", hello(s2), "node cn03 is revoked: its delete node at 2026-12-01T10:00:00Z did not complete (run delete node cn03 again)")
	s2.mu.Lock()
	e := proto.NodeAddr{Node: proto.NodeID(id)}
	s2.denyKeys[e] = []keys.KeyID{0xdeadbeef} // a key no longer held
	s2.pruneDenyLocked()
	kept := s2.deny.Revoked(proto.NodeID(id), proto.Addr{})
	s2.mu.Unlock()
	if !kept {
		t.Fatal("the prune dropped the deny entry of a node still registered")
	}

	// delete node again completes it.
	if _, err := s2.deleteNode("cn03"); err != nil {
		t.Fatalf("second delete node: %v", err)
	}
	if _, err := s2.listNodes("cn03"); err == nil || !strings.Contains(err.Error(), "unknown node cn03") {
		t.Fatalf("list node cn03 after the second delete: %v", err)
	}
	revoked("deleted", hello(s2), "node cn03 (id "+res.Node.ID+") was deleted and is revoked")
	if got := s2.nodeStateCounts(); got["deleting"] != 0 || got["enrolling"] != 1 {
		t.Fatalf("nodes gauge after the second delete: %v", got)
	}
	closeServer(s2)

	catch3 := &logCatcher{}
	log3 := quietLog()
	log3.AddHook(catch3)
	s3, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: log3, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer closeServer(s3)
	if w := catch3.warnings(); len(w) != 0 {
		t.Fatalf("start after the completed delete warns: %q", w)
	}
	if all, _ := s3.listNodes(""); len(all) != 1 || all[0].Name != "cn01" {
		t.Fatalf("nodes after the restart: %+v", all)
	}
	revoked("deleted, restarted", hello(s3), "was deleted and is revoked")
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A delete node whose registry commit fails fails closed, the first time
// and when run again on a half-deleted node: the node stays denied (in
// memory, in the DenySet, on disk) and shown as deleting, never lifted.
func TestDeleteNodePersistFailureKeepsDeny(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.createNode(context.Background(), admin.CreateNodeArgs{Name: "cn07", Mom: "127.0.0.57"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.Parse(res.Node.ID)
	denied := func(s *Server) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.deny.Revoked(proto.NodeID(id), proto.Addr{})
	}
	s.states.replicate = func(string, []replica.StateRecord) error { return errors.New("disk full") }
	for try := 1; try <= 2; try++ {
		if _, err := s.deleteNode("cn07"); err == nil || !strings.Contains(err.Error(), "stays denied") {
			t.Fatalf("delete %d with the registry commit failing: %v", try, err)
		}
		if one, err := s.listNodes("cn07"); err != nil || one[0].State != admin.NodeDeleting || !denied(s) {
			t.Fatalf("after failed delete %d: %+v, %v, denied %v", try, one, err, denied(s))
		}
	}
	closeServer(s)
	s2, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeServer(s2)
	if one, err := s2.listNodes("cn07"); err != nil || one[0].State != admin.NodeDeleting || !denied(s2) {
		t.Fatalf("restarted: %+v, %v, denied %v", one, err, denied(s2))
	}
	if _, err := s2.deleteNode("cn07"); err != nil {
		t.Fatalf("delete node with the commit working: %v", err)
	}
	if !denied(s2) {
		t.Fatal("deleted, and not denied")
	}
}

// A half-deleted node whose deny only deny.journal holds stays refused
// when deny.json is lost too: the withheld recovery applies the journal's
// records, so the node neither passes its Hello nor gets the recovery's
// new key.
func TestHalfDeletedNodeKeptWhenDenyFileLost(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(),
		CrashAt: crashAt("delete-denied")})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.createNode(context.Background(), admin.CreateNodeArgs{Name: "cn09", Mom: "127.0.0.59"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.Parse(res.Node.ID)
	untilCrash(t, "delete node", func() { _, _ = s.deleteNode("cn09") })
	closeServer(s)
	if err := os.Remove(filepath.Join(dir, denyFile)); err != nil {
		t.Fatal(err)
	}
	s2, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeServer(s2)
	if !s2.base.State.Lost(denyFile) {
		t.Fatal("deny.json removed, and not recovered as lost")
	}
	var rj *handshake.Rejection
	if _, _, _, err := s2.helloNode(proto.NodeID(id), netip.MustParseAddr("127.0.0.59")); !errors.As(err, &rj) || rj.Reason != reasons.Revoked {
		t.Fatalf("hello of the half-deleted node after deny.json was lost: %v, want refused as revoked", err)
	}
	if one, err := s2.listNodes("cn09"); err != nil || one[0].State != admin.NodeDeleting {
		t.Fatalf("after the recovery: %+v, %v", one, err)
	}
}

// A set node Mom= cut short between the old address's deny and the
// registry's move leaves the node at its old address, denied: it is
// shown denied with a comment, warned at start, and set node Mom= to its
// own address lifts the deny (or to the new one completes the move).
func TestReaddressCutShortShown(t *testing.T) {
	dir := offlineDir(t, 2)
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(),
		CrashAt: crashAt("readdress-denied")})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.listNodes("")
	if err != nil || len(all) != 2 {
		t.Fatalf("nodes: %+v, %v", all, err)
	}
	name, old := all[0].Name, all[0].Mom
	untilCrash(t, "set node", func() {
		_, _ = s.setNode(context.Background(), admin.SetArgs{Name: name, Attrs: []admin.Attr{{Name: "Mom", Value: "127.0.0.99"}}})
	})
	closeServer(s)

	catch := &logCatcher{}
	log := quietLog()
	log.AddHook(catch)
	s2, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer closeServer(s2)
	one, err := s2.listNodes(name)
	if err != nil || one[0].Mom != old || !one[0].Denied || !strings.Contains(one[0].Comment, "set node "+name+" Mom="+old) {
		t.Fatalf("after the cut-short set node: %+v, %v", one, err)
	}
	if w := catch.warnings(); len(w) != 1 || !strings.Contains(w[0], "node locked out") {
		t.Fatalf("start warnings %q", w)
	}
	if other, _ := s2.listNodes(all[1].Name); other[0].Denied || other[0].Comment != "" {
		t.Fatalf("the other node: %+v", other[0])
	}
	if _, err := s2.setNode(context.Background(), admin.SetArgs{Name: name, Attrs: []admin.Attr{{Name: "Mom", Value: old}}}); err != nil {
		t.Fatal(err)
	}
	if one, _ := s2.listNodes(name); one[0].Denied || one[0].Comment != "" || one[0].Mom != old {
		t.Fatalf("after set node Mom= its own address: %+v", one[0])
	}
	s2.mu.Lock()
	denied := s2.deny.Revoked(proto.NodeID{}, proto.AddrFrom(netip.MustParseAddr(old)))
	s2.mu.Unlock()
	if denied {
		t.Fatal("its own address is still denied")
	}
}
