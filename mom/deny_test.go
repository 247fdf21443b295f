package mom

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// denyMOM is a MOM with only what the deny messages touch: its deny list,
// state directory and log.
func denyMOM(t *testing.T, dir string) (*Mom, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	m := &Mom{cfg: Config{StateDir: dir}, log: log, deny: &ping.DenyList{}, base: &daemon.Base{State: &daemon.State{}}}
	if err := m.loadDeny(); err != nil {
		t.Fatal(err)
	}
	return m, &out
}

func TestDenyLift(t *testing.T) {
	addr := func(s string) proto.Addr {
		a, err := proto.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	dir := t.TempDir()
	m, out := denyMOM(t, dir)

	// A DenyLift of nothing denied changes nothing and writes nothing.
	if err := m.handleServerMessage(&proto.DenyLift{Entries: []proto.NodeAddr{{Addr: addr("127.0.0.9")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, denyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deny.json written for a lift that changed nothing: %v", err)
	}

	node := proto.NodeID{0xa1}
	m.deny.DenyUnder(node, addr("127.0.0.3"), []uint32{7}) // delete node: under the held key
	m.deny.Deny(proto.NodeID{}, addr("127.0.0.4"))         // set node Mom=: the old address
	m.deny.Deny(proto.NodeID{}, addr("127.0.0.5"))
	if err := m.saveDeny(); err != nil {
		t.Fatal(err)
	}

	lift := &proto.DenyLift{Entries: []proto.NodeAddr{{Addr: addr("127.0.0.3")}, {Addr: addr("127.0.0.4")}, {Addr: addr("127.0.0.9")}}}
	if err := m.handleServerMessage(lift); err != nil {
		t.Fatal(err)
	}
	check := func(m *Mom) {
		t.Helper()
		for _, a := range []string{"127.0.0.3", "127.0.0.4"} {
			if m.deny.RevokedUnder(proto.NodeID{0xb2}, addr(a), 7) {
				t.Errorf("%s still denied after the DenyLift", a)
			}
		}
		if !m.deny.RevokedUnder(proto.NodeID{0xb2}, addr("127.0.0.5"), 7) {
			t.Error("127.0.0.5, not named by the DenyLift, is no longer denied")
		}
		if !m.deny.Revoked(node, proto.Addr{}) {
			t.Error("the deleted node's id is no longer denied: the DenyLift named its address only")
		}
	}
	check(m)
	for _, a := range []string{"127.0.0.3", "127.0.0.4"} {
		if !strings.Contains(out.String(), "addr="+a) || !strings.Contains(out.String(), "deny lifted by server") {
			t.Errorf("lift of %s not logged: %s", a, out.String())
		}
	}
	if strings.Contains(out.String(), "127.0.0.9") {
		t.Errorf("a lift of an address not denied was logged: %s", out.String())
	}
	// Persisted: a restarted MOM has the same list.
	again, _ := denyMOM(t, dir)
	check(again)

	// A DenyLift naming a node id lifts the id.
	if err := m.handleServerMessage(&proto.DenyLift{Entries: []proto.NodeAddr{{Node: node}}}); err != nil {
		t.Fatal(err)
	}
	again, _ = denyMOM(t, dir)
	if again.deny.Revoked(node, proto.Addr{}) {
		t.Error("node id still denied after a DenyLift naming it")
	}
}
