package server

import (
	"errors"
	"testing"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// TestIMSecurityDefaults: a new cluster gets encrypt; a state written
// before sealed sessions (no im_security) reads as none; only none, auth
// and encrypt can be set.
func TestIMSecurityDefaults(t *testing.T) {
	if got := DefaultAttrs().Map()["im_security"]; got != "encrypt" {
		t.Fatalf("a new cluster's im_security: %q", got)
	}
	upgraded := DefaultAttrs()
	upgraded.IMSecurity = ""
	if err := upgraded.validate(); err != nil {
		t.Fatalf("state of before sealed sessions: %v", err)
	}
	if got := upgraded.Map()["im_security"]; got != "none" {
		t.Fatalf("an upgraded cluster's im_security: %q", got)
	}
	next, err := upgraded.with([]admin.Attr{{Name: "im_security", Value: "AUTH"}})
	if err != nil || next.IMSecurity != "auth" {
		t.Fatalf("set im_security=AUTH: %+v %v", next, err)
	}
	if _, err := upgraded.with([]admin.Attr{{Name: "im_security", Value: "strong"}}); err == nil {
		t.Fatal("im_security=strong accepted")
	}
}

// TestSealedNodeRefusedUnsealed: a node marked as speaking sealed sessions
// is refused an unsealed control session (a hello without the capability,
// a legacy hello in compat mode) until the administrator clears the mark.
func TestSealedNodeRefusedUnsealed(t *testing.T) {
	s := startServer(t)
	setMode(t, s, "compat")
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n2", Mom: "127.0.0.2"})
	s.mu.Lock()
	n := s.reg.byName["n2"]
	s.markSealedLocked(n)
	s.mu.Unlock()
	if _, err := s.sessionPolicy(n, false); !isRefusal(err, reasons.SessionDowngrade) {
		t.Fatalf("hello without the capability: %v", err)
	}
	if p, err := s.sessionPolicy(n, true); err != nil || p != 2 {
		t.Fatalf("hello with it: %d %v", p, err)
	}
	lc := legacyHello(t, s, "127.0.0.2", "n2")
	lc.wantReject(proto.RejectSessionDowngrade, "speaks sealed sessions")
	infos := mustAdmin(t, s, admin.OpListNode, admin.ListNodeArgs{Name: "n2"}).([]admin.NodeInfo)
	if !infos[0].Sealed || infos[0].Session != "" {
		t.Fatalf("list node n2: %+v", infos[0])
	}
	mustAdmin(t, s, admin.OpSetNode, admin.SetArgs{Name: "n2", Attrs: []admin.Attr{{Name: "sealed", Value: "false"}}})
	if _, err := s.sessionPolicy(n, false); err != nil {
		t.Fatalf("after sealed=false: %v", err)
	}
	if _, err := adminCall(t, s, admin.OpSetNode, admin.SetArgs{Name: "n2", Attrs: []admin.Attr{{Name: "sealed", Value: "true"}}}); err == nil {
		t.Fatal("sealed=true accepted")
	}
}

func isRefusal(err error, want reasons.Reason) bool {
	var rj *handshake.Rejection
	return errors.As(err, &rj) && rj.Reason == want
}
