package mom

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// namesMom is a MOM with only what nodeNameOf needs; sent receives the
// NameLookups it writes on its control connection.
func namesMom(t *testing.T, sent chan<- *proto.NameLookup) *Mom {
	t.Helper()
	m := &Mom{names: newNameBook(), ctl: newLink()}
	m.ctl.send, m.ctl.ver = func(msg proto.Message) error {
		sent <- msg.(*proto.NameLookup)
		return nil
	}, proto.V2
	return m
}

// TestNodeNames: a sister's name is asked once per id, shared by the
// callers in flight, cached found or unknown; no control connection, a
// v1 one, or an ended one gives "" and caches nothing.
func TestNodeNames(t *testing.T) {
	sent := make(chan *proto.NameLookup, 16)
	m := namesMom(t, sent)
	id := proto.NodeID(uuid.New())

	// Two callers at once: one lookup, both get the answer.
	var wg sync.WaitGroup
	got := make([]string, 2)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = m.nodeNameOf(id) }()
	}
	lk := <-sent
	if lk.Node != id {
		t.Fatalf("lookup for %x, want %x", lk.Node, id)
	}
	m.names.answer(&proto.NodeName{ID: lk.ID + 1, Node: id, Status: proto.NameFound, Name: "wrong"}) // not ours: dropped
	m.names.answer(&proto.NodeName{ID: lk.ID, Node: proto.NodeID(uuid.New()), Status: proto.NameFound, Name: "wrong"})
	m.names.answer(&proto.NodeName{ID: lk.ID, Node: id, Status: proto.NameFound, Name: "cn02"})
	wg.Wait()
	if got[0] != "cn02" || got[1] != "cn02" {
		t.Fatalf("names %q", got)
	}
	if len(sent) != 0 {
		t.Fatalf("%d more lookups for one id", len(sent))
	}
	if name := m.nodeNameOf(id); name != "cn02" || len(sent) != 0 {
		t.Fatalf("cached name %q, lookups %d", name, len(sent))
	}

	// An id the server does not know is cached too.
	ghost := proto.NodeID(uuid.New())
	done := make(chan string)
	go func() { done <- m.nodeNameOf(ghost) }()
	lk = <-sent
	m.names.answer(&proto.NodeName{ID: lk.ID, Node: ghost, Status: proto.NameUnknown})
	if name := <-done; name != "" {
		t.Fatalf("unknown id named %q", name)
	}
	if name := m.nodeNameOf(ghost); name != "" || len(sent) != 0 {
		t.Fatalf("unknown id asked again (%d) or named %q", len(sent), name)
	}

	// The control connection ends with a lookup in flight: "" at once,
	// and the next call asks again.
	other := proto.NodeID(uuid.New())
	go func() { done <- m.nodeNameOf(other) }()
	<-sent
	m.names.abandon()
	if name := <-done; name != "" {
		t.Fatalf("abandoned lookup named %q", name)
	}
	go func() { done <- m.nodeNameOf(other) }()
	lk = <-sent
	m.names.answer(&proto.NodeName{ID: lk.ID, Node: other, Status: proto.NameDeleted, Name: "cn03"})
	if name := <-done; name != "cn03" {
		t.Fatalf("deleted node named %q, want the name it had", name)
	}

	// No v2 control connection: "" without waiting, nothing cached.
	m.ctl.ver = proto.V1
	if name := m.nodeNameOf(proto.NodeID(uuid.New())); name != "" {
		t.Fatalf("over a v1 connection: %q", name)
	}
	m.ctl.send = func(proto.Message) error { return errors.New("broken") }
	m.ctl.ver = proto.V2
	fresh := proto.NodeID(uuid.New())
	if name := m.nodeNameOf(fresh); name != "" {
		t.Fatalf("failed send: %q", name)
	}
	if _, ok := m.names.known[fresh]; ok || len(m.names.pending) != 0 || len(m.names.byLookup) != 0 {
		t.Fatal("a failed lookup left state behind")
	}
	if m.nodeNameOf(proto.NodeID{}) != "" {
		t.Fatal("the zero id has a name")
	}
}

// TestNodeNamesBounded: past maxNames the oldest names are forgotten.
func TestNodeNamesBounded(t *testing.T) {
	b := newNameBook()
	first := proto.NodeID(uuid.New())
	b.rememberLocked(first, "n0")
	for i := 0; i < maxNames; i++ {
		b.rememberLocked(proto.NodeID(uuid.New()), "n")
	}
	if _, ok := b.known[first]; ok || len(b.known) != maxNames || len(b.order) != maxNames {
		t.Fatalf("%d names kept (oldest kept %v)", len(b.known), ok)
	}
}

// TestCheckSistersDisconnected: without a control connection and with no
// address cached, a job's sisters cannot be checked: refused, saying so.
func TestCheckSistersDisconnected(t *testing.T) {
	m := &Mom{names: newNameBook(), ctl: newLink()}
	err := m.checkSisters(context.Background(), "j1", []string{"n2", "n3"})
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeConflict || !strings.Contains(err.Error(), "cannot check sister(s) n2,n3: look up") ||
		!strings.Contains(err.Error(), "not connected to the server") {
		t.Fatalf("checkSisters while disconnected: %v", err)
	}
	m.ctl.names["n2"] = netip.MustParseAddrPort("127.0.0.2:15003") // looked up earlier
	err = m.checkSisters(context.Background(), "j1", []string{"n2", "n3"})
	if err == nil || !strings.Contains(err.Error(), "cannot check sister(s) n3:") {
		t.Fatalf("with n2 cached: %v", err)
	}
}
