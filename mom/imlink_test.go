package mom

import (
	"errors"
	"io"
	"net"
	"testing"

	"github.com/momgate/momgate/proto"
)

// TestIMTableClosesWaitingConnection: an admitted plain connection that
// waits for its first request has no link yet, and revocation still
// closes it (by its net.Conn); peers does not list it as a session.
func TestIMTableClosesWaitingConnection(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	node := proto.NodeID{1, 2, 3}
	tbl := newIMLinks()
	w := &imLink{nc: a, ver: proto.V2, node: node, dir: "in"}
	tbl.add(w)
	if got := tbl.byAddr(w.addr); len(got) != 0 {
		t.Fatalf("a waiting connection is listed as a session: %d", len(got))
	}
	if n := tbl.closeWhere(func(l *imLink) bool { return l.node == node }); n != 1 {
		t.Fatalf("closed %d connections, want 1", n)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the waiting connection is still open: read %v", err)
	}
	tbl.remove(w)
}
