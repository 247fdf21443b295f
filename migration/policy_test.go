package migration

import (
	"slices"
	"testing"

	"github.com/momgate/momgate/proto"
)

const (
	v1 = proto.VersionBitV1
	v2 = proto.VersionBitV2
)

func TestVersionsByMode(t *testing.T) {
	for _, c := range []struct {
		mode          proto.Mode
		server, mom   uint8
		momNoKey      uint8
		needsListMom  bool
		controlWithMe proto.Version
	}{
		{proto.ModeLegacy, v1, v1, v1, true, proto.V1},
		{proto.ModeCompat, v1 | v2, v1 | v2, v1, true, proto.V2},
		{proto.ModePing, v2, v2, 0, false, proto.V2},
	} {
		if got := ServerVersions(c.mode); got != c.server {
			t.Errorf("ServerVersions(%s) = %s, want %s", c.mode, VersionsString(got), VersionsString(c.server))
		}
		if got := MomVersions(c.mode, true); got != c.mom {
			t.Errorf("MomVersions(%s, key) = %s, want %s", c.mode, VersionsString(got), VersionsString(c.mom))
		}
		if got := MomVersions(c.mode, false); got != c.momNoKey {
			t.Errorf("MomVersions(%s, no key) = %s, want %s", c.mode, VersionsString(got), VersionsString(c.momNoKey))
		}
		if got := NeedsList(c.mode, c.mom); got != c.needsListMom {
			t.Errorf("NeedsList(%s, %s) = %v", c.mode, VersionsString(c.mom), got)
		}
		if got := ControlVersion(c.server, c.mom); got != c.controlWithMe {
			t.Errorf("ControlVersion in %s = %d, want %d", c.mode, got, c.controlWithMe)
		}
	}
	// A compat MOM still needs lists in compat mode, and none in ping mode.
	if !NeedsList(proto.ModeCompat, v1|v2) || NeedsList(proto.ModePing, v1|v2) || NeedsList(proto.ModeCompat, v2) {
		t.Fatal("NeedsList: compat MOMs get lists in compat only; PING-only MOMs never")
	}
	// A PING-only MOM and a legacy server have nothing in common.
	if ControlVersion(ServerVersions(proto.ModeLegacy), v2) != 0 {
		t.Fatal("legacy server and PING-only MOM must not agree on a version")
	}
	if ControlVersion(ServerVersions(proto.ModePing), v1) != 0 {
		t.Fatal("ping server and legacy-only MOM must not agree on a version")
	}
}

func TestUpgradesOnlyWhenV1Dropped(t *testing.T) {
	for bits, want := range map[uint8]bool{v1: false, v1 | v2: false, v2: true, 0: false} {
		if got := Upgrades(bits); got != want {
			t.Errorf("Upgrades(%q) = %v, want %v", VersionsString(bits), got, want)
		}
	}
	if ParseVersions(VersionsString(v1|v2)) != v1|v2 || ParseVersions("v2") != v2 || ParseVersions("") != 0 {
		t.Fatal("ParseVersions does not invert VersionsString")
	}
}

func TestAdmitInbound(t *testing.T) {
	cases := []struct {
		name string
		in   Inbound
		want Verdict
	}{
		{"legacy, listed", Inbound{Protocol: proto.ModeLegacy, Version: proto.V1, OnList: true}, Verdict{Admit: true, ByList: true}},
		{"legacy, not listed", Inbound{Protocol: proto.ModeLegacy, Version: proto.V1}, Verdict{Refusal: RefuseNotListed}},
		{"legacy, ping", Inbound{Protocol: proto.ModeLegacy, Version: proto.V2, OnList: true}, Verdict{Refusal: RefuseV2}},
		{"compat, listed v1", Inbound{Protocol: proto.ModeCompat, Version: proto.V1, OnList: true}, Verdict{Admit: true, ByList: true}},
		{"compat, ping, not listed", Inbound{Protocol: proto.ModeCompat, Version: proto.V2}, Verdict{Admit: true}},
		{"compat, upgraded v1", Inbound{Protocol: proto.ModeCompat, Version: proto.V1, OnList: true, Upgraded: true}, Verdict{Refusal: RefuseDowngrade}},
		{"compat, upgraded ping", Inbound{Protocol: proto.ModeCompat, Version: proto.V2, Upgraded: true}, Verdict{Admit: true}},
		{"legacy, upgraded v1", Inbound{Protocol: proto.ModeLegacy, Version: proto.V1, OnList: true, Upgraded: true}, Verdict{Refusal: RefuseDowngrade}},
		{"ping, upgraded v1", Inbound{Protocol: proto.ModePing, Version: proto.V1, OnList: true, Upgraded: true}, Verdict{Refusal: RefuseDowngrade}},
		{"ping, listed v1", Inbound{Protocol: proto.ModePing, Version: proto.V1, OnList: true}, Verdict{Refusal: RefuseV1}},
		{"unknown protocol, v1", Inbound{Version: proto.V1, OnList: true}, Verdict{Refusal: RefuseV1}},
		{"revoked v1", Inbound{Protocol: proto.ModeCompat, Version: proto.V1, OnList: true, Revoked: true}, Verdict{Refusal: RefuseRevoked}},
	}
	for _, c := range cases {
		if got := AdmitInbound(c.in); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestNegotiation(t *testing.T) {
	if got := Attempts(proto.ModeCompat, true); !slices.Equal(got, []proto.Version{proto.V2, proto.V1}) {
		t.Fatalf("compat tries %v", got)
	}
	if got := Attempts(proto.ModeCompat, false); !slices.Equal(got, []proto.Version{proto.V1}) {
		t.Fatalf("compat without key tries %v", got)
	}
	if got := Attempts(proto.ModePing, false); len(got) != 0 {
		t.Fatalf("ping without key tries %v", got)
	}
	if got := Attempts(proto.ModeLegacy, true); !slices.Equal(got, []proto.Version{proto.V1}) {
		t.Fatalf("legacy tries %v", got)
	}
	// Fallback to v1 only in compat, only on a legacy-only refusal, never to an upgraded node.
	if !MayFallback(proto.ModeCompat, false, true) {
		t.Fatal("compat must fall back to a legacy-only peer")
	}
	for _, c := range [][3]bool{{true, true}, {false, false}} {
		if MayFallback(proto.ModeCompat, c[0], c[1]) {
			t.Fatalf("compat fell back with upgraded=%v legacyOnly=%v", c[0], c[1])
		}
	}
	if MayFallback(proto.ModePing, false, true) {
		t.Fatal("a PING-only MOM must never fall back")
	}
}
