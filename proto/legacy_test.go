package proto

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func roundTrip(t *testing.T, m Message) Message {
	t.Helper()
	frame := Marshal(m)
	got, err := Unmarshal(frame)
	if err != nil {
		t.Fatalf("unmarshal %s: %v", m.Type(), err)
	}
	if again := Marshal(got); !bytes.Equal(again, frame) {
		t.Fatalf("%s: re-encoding differs:\n%x\n%x", m.Type(), frame, again)
	}
	return got
}

func TestLegacyMessagesRoundTrip(t *testing.T) {
	a := Addr(netip.MustParseAddr("127.0.0.7").As16())
	lh := roundTrip(t, &LegacyHello{Name: "n7", IMPort: 15003, Versions: VersionBitV1 | VersionBitV2}).(*LegacyHello)
	if lh.Name != "n7" || lh.IMPort != 15003 || lh.Versions != VersionBitV1|VersionBitV2 || lh.Version() != V1 {
		t.Fatalf("LegacyHello %+v", lh)
	}
	nu := roundTrip(t, &NodeUpgraded{Op: UpgradedRemove, Entries: []NodeAddr{{Node: NodeID{1}, Addr: a}}}).(*NodeUpgraded)
	if nu.Op != UpgradedRemove || len(nu.Entries) != 1 || nu.Entries[0].Addr != a {
		t.Fatalf("NodeUpgraded %+v", nu)
	}
	for _, v := range []Version{V1, V2} {
		nl := roundTrip(t, &NodeLookup{Ver: v, ID: 42, Name: "n3"}).(*NodeLookup)
		if nl.Ver != v || nl.ID != 42 || nl.Name != "n3" {
			t.Fatalf("NodeLookup %+v", nl)
		}
		na := roundTrip(t, &NodeAddress{Ver: v, ID: 42, Name: "n3", Status: LookupFound, Addr: a, Port: 15003}).(*NodeAddress)
		if na.Ver != v || na.Addr != a || na.Port != 15003 || na.Status != LookupFound {
			t.Fatalf("NodeAddress %+v", na)
		}
	}
}

func TestLegacyMessagesRejectBadValues(t *testing.T) {
	// LegacyHello without the v1 bit.
	frame := Marshal(&LegacyHello{Name: "x", Versions: VersionBitV2})
	if _, err := Unmarshal(frame); !errors.Is(err, ErrBadValue) {
		t.Fatalf("LegacyHello without v1: %v", err)
	}
	// NodeUpgraded with an undefined op.
	frame = Marshal(&NodeUpgraded{Op: 9})
	if _, err := Unmarshal(frame); !errors.Is(err, ErrBadValue) {
		t.Fatalf("NodeUpgraded op 9: %v", err)
	}
	// NodeAddress with an undefined status.
	frame = Marshal(&NodeAddress{Status: 7})
	if _, err := Unmarshal(frame); !errors.Is(err, ErrBadValue) {
		t.Fatalf("NodeAddress status 7: %v", err)
	}
	// LegacyHello and ClusterAddrs do not exist in v2.
	frame = Marshal(&LegacyHello{Name: "x", Versions: VersionBitV1})
	frame[2] = byte(V2)
	if _, err := Unmarshal(frame); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("LegacyHello as v2: %v", err)
	}
	// A run that wraps past 255.255.255.255.
	frame = Marshal(&ClusterAddrs{Runs: []AddrRun{{First: [4]byte{255, 255, 255, 254}, Count: 3}}})
	if _, err := Unmarshal(frame); !errors.Is(err, ErrBadValue) {
		t.Fatalf("wrapping run: %v", err)
	}
	// A zero-length run.
	frame = Marshal(&ClusterAddrs{Runs: []AddrRun{{First: [4]byte{10, 0, 0, 1}, Count: 0}}})
	if _, err := Unmarshal(frame); !errors.Is(err, ErrBadValue) {
		t.Fatalf("empty run: %v", err)
	}
}

// FuzzLegacyFrames decodes arbitrary bytes as a frame; the seeds are the
// legacy (v1) and lookup messages. Whatever decodes must re-encode to the
// same bytes.
func FuzzLegacyFrames(f *testing.F) {
	f.Add(Marshal(&LegacyHello{Name: "n1", IMPort: 15003, Versions: VersionBitV1}))
	f.Add(Marshal(&ClusterAddrs{Runs: []AddrRun{{[4]byte{127, 0, 0, 2}, 10}}}))
	f.Add(Marshal(&NodeUpgraded{Op: UpgradedAdd, Entries: []NodeAddr{{}}}))
	f.Add(Marshal(&NodeLookup{Ver: V1, ID: 1, Name: "n2"}))
	f.Add(Marshal(&NodeAddress{Ver: V1, ID: 1, Name: "n2", Port: 15003}))
	f.Add(Marshal(&IMPoll{Ver: V1, Job: "j", Seq: 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		if again := Marshal(m); !bytes.Equal(again, b) {
			t.Fatalf("%s: decoded %x, re-encoded %x", m.Type(), b, again)
		}
	})
}
