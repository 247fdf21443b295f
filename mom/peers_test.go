package mom

import (
	"net/netip"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// TestPeerTableEvictsTheOldest: a full table drops its least recently
// admitted rows to make room, never the newest, and lists ids and keys as
// text.
func TestPeerTableEvictsTheOldest(t *testing.T) {
	tbl := newPeerTable(32)
	t0 := time.Unix(1000, 0)
	addr := func(i int) proto.Addr { return proto.AddrFrom(netip.AddrFrom4([4]byte{127, 9, byte(i >> 8), byte(i)})) }
	for i := range 40 {
		tbl.admit(addr(i), proto.NodeID{byte(i + 1)}, "n", keys.KeyID(0x0a0b0c0d), "in", 7, t0.Add(time.Duration(i)*time.Second))
	}
	if n := tbl.len(); n > 32 || n < 30 {
		t.Fatalf("%d rows in a table of 32", n)
	}
	rows := tbl.list()
	have := map[string]bool{}
	for _, r := range rows {
		have[r.Addr] = true
		if r.KeyID != "0a0b0c0d" || r.NodeID == "" || r.Protocol != "v2" {
			t.Fatalf("row %+v", r)
		}
	}
	for i := 36; i < 40; i++ {
		if !have[addr(i).String()] {
			t.Fatalf("recent peer %s evicted", addr(i))
		}
	}
	if have[addr(0).String()] {
		t.Fatal("the oldest peer kept")
	}
	tbl.forget(proto.NodeID{40}, proto.Addr{})
	if have := tbl.len(); have != len(rows)-1 {
		t.Fatalf("forget by node id left %d rows of %d", have, len(rows))
	}
}
