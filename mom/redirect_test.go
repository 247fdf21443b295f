package mom

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/momgate/momgate/proto"
)

// TestReadServerHelloOrRedirect: the first frame of a control connection
// is a ServerHello, or a follower's NotLeader, which becomes a *notLeader
// error (with or without a leader); anything else is refused.
func TestReadServerHelloOrRedirect(t *testing.T) {
	frame := func(m proto.Message) *bytes.Reader { return bytes.NewReader(proto.AppendFrame(nil, m)) }

	sh := &proto.ServerHello{ServerID: proto.NodeID{1}, Mode: proto.ModePing, Versions: proto.VersionBitV2}
	got, err := readServerHello(frame(sh))
	if err != nil || got.ServerID != sh.ServerID {
		t.Fatalf("ServerHello: %+v, %v", got, err)
	}

	_, err = readServerHello(frame(&proto.NotLeader{Addr: proto.AddrFrom(netip.MustParseAddr("127.0.0.2")), Port: 15001, Leader: "s2"}))
	var nl *notLeader
	if !errors.As(err, &nl) || !errors.Is(err, errNotLeader) || nl.Leader != netip.MustParseAddrPort("127.0.0.2:15001") || nl.Name != "s2" {
		t.Fatalf("NotLeader with a leader: %v (%+v)", err, nl)
	}
	if !strings.Contains(err.Error(), "names 127.0.0.2:15001 (s2) as the leader") {
		t.Errorf("message %q", err)
	}

	_, err = readServerHello(frame(&proto.NotLeader{}))
	if !errors.As(err, &nl) || nl.Leader.IsValid() || !strings.Contains(err.Error(), "knows no leader") {
		t.Fatalf("NotLeader without a leader: %v (%+v)", err, nl)
	}

	_, err = readServerHello(frame(&proto.Reject{Code: proto.RejectMalformed}))
	if err == nil || errors.As(err, &nl) || !strings.Contains(err.Error(), "expected ServerHello, got Reject") {
		t.Fatalf("Reject as first frame: %v", err)
	}
	if _, err := readServerHello(bytes.NewReader([]byte("MG\x02\x06\x00"))); err == nil || errors.As(err, &nl) {
		t.Fatalf("a cut frame: %v", err)
	}
}
