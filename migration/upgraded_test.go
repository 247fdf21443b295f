package migration

import (
	"bytes"
	"errors"
	"testing"

	"github.com/momgate/momgate/proto"
)

func na(id byte, ip string) proto.NodeAddr {
	a, err := proto.ParseAddr(ip)
	if err != nil {
		panic(err)
	}
	return proto.NodeAddr{Node: proto.NodeID{15: id}, Addr: a}
}

func TestUpgradedSetOps(t *testing.T) {
	s := NewUpgradedSet()
	if ch, err := s.Apply(proto.UpgradedAdd, []proto.NodeAddr{na(1, "127.0.0.2"), na(2, "127.0.0.3")}); err != nil || !ch {
		t.Fatalf("add: %v %v", ch, err)
	}
	if ch, _ := s.Apply(proto.UpgradedAdd, []proto.NodeAddr{na(1, "127.0.0.2")}); ch {
		t.Fatal("re-adding a member reported a change")
	}
	if !s.Contains(na(0, "127.0.0.2").Addr) || s.Contains(na(0, "127.0.0.4").Addr) || s.Len() != 2 {
		t.Fatalf("membership wrong: %v", s.Entries())
	}
	if ch, _ := s.Apply(proto.UpgradedRemove, []proto.NodeAddr{na(1, "127.0.0.2")}); !ch || s.Contains(na(0, "127.0.0.2").Addr) {
		t.Fatal("remove did not remove")
	}
	if ch, _ := s.Apply(proto.UpgradedReplace, []proto.NodeAddr{na(3, "127.0.0.9")}); !ch || s.Len() != 1 || !s.Contains(na(0, "127.0.0.9").Addr) {
		t.Fatalf("replace: %v", s.Entries())
	}
	if _, err := s.Apply(0, nil); !errors.Is(err, proto.ErrBadValue) {
		t.Fatalf("op 0: %v", err)
	}
	if s.Len() != 1 {
		t.Fatal("a refused op changed the set")
	}
}

func TestMomStateRoundTrip(t *testing.T) {
	s := NewUpgradedSet()
	_, _ = s.Apply(proto.UpgradedAdd, []proto.NodeAddr{na(1, "127.0.0.2"), na(2, "10.1.2.3")})
	b := EncodeMomState(MomState{ServerMode: proto.ModeCompat, Upgraded: s})
	st, err := DecodeMomState(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.ServerMode != proto.ModeCompat || st.Upgraded.Len() != 2 || !st.Upgraded.Contains(na(0, "10.1.2.3").Addr) {
		t.Fatalf("decoded %+v %v", st, st.Upgraded.Entries())
	}
	if again := EncodeMomState(st); !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs:\n%s\n%s", b, again)
	}
	for name, bad := range map[string]string{
		"format":   `{"format":2,"server_mode":"","upgraded":[]}`,
		"mode":     `{"format":1,"server_mode":"fast","upgraded":[]}`,
		"unknown":  `{"format":1,"server_mode":"","upgraded":[],"x":1}`,
		"trailing": `{"format":1,"server_mode":"","upgraded":[]} {}`,
		"node":     `{"format":1,"server_mode":"","upgraded":[{"node":"zz","addr":"127.0.0.1"}]}`,
		"addr":     `{"format":1,"server_mode":"","upgraded":[{"node":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","addr":"127.0.0.01"}]}`,
		"dup": `{"format":1,"server_mode":"","upgraded":[{"node":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","addr":"127.0.0.1"},` +
			`{"node":"6ba7b810-9dad-11d1-80b4-00c04fd430c9","addr":"127.0.0.1"}]}`,
	} {
		if _, err := DecodeMomState([]byte(bad)); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: %v, want ErrBadState", name, err)
		}
	}
}

// FuzzDecodeMomState: whatever decodes re-encodes to something that
// decodes to the same state.
func FuzzDecodeMomState(f *testing.F) {
	s := NewUpgradedSet()
	_, _ = s.Apply(proto.UpgradedAdd, []proto.NodeAddr{na(1, "127.0.0.2")})
	f.Add(EncodeMomState(MomState{ServerMode: proto.ModeLegacy, Upgraded: s}))
	f.Add([]byte(`{"format":1,"server_mode":"","upgraded":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeMomState(b)
		if err != nil {
			return
		}
		enc := EncodeMomState(st)
		st2, err := DecodeMomState(enc)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v\n%s", err, enc)
		}
		if !bytes.Equal(EncodeMomState(st2), enc) {
			t.Fatalf("state changed across a round trip")
		}
	})
}
