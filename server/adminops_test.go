package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// TestUnsetServer: unset server puts attributes back to their defaults,
// all or nothing, and survives a restart like set server.
func TestUnsetServer(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dir, &fakeClock{t: time.Now()})
	set := []admin.Attr{{Name: "token_ttl", Value: "2h"}, {Name: "heartbeat", Value: "3s"}, {Name: "key_grace", Value: "1m"}}
	if _, err := s.setServer(set); err != nil {
		t.Fatal(err)
	}
	info, err := s.unsetServer([]string{"TOKEN_TTL", "heartbeat"})
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultAttrs().Map()
	if info.Attrs["token_ttl"] != def["token_ttl"] || info.Attrs["heartbeat"] != def["heartbeat"] || info.Attrs["key_grace"] != "1m0s" {
		t.Fatalf("after unset token_ttl,heartbeat: %v", info.Attrs)
	}
	// An unknown name changes nothing, not even the names before it.
	_, err = s.unsetServer([]string{"key_grace", "nonsense"})
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.Code != admin.CodeBadValue || !strings.Contains(err.Error(), `"nonsense"`) || !strings.Contains(err.Error(), "token_ttl") {
		t.Fatalf("unset of an unknown attribute: %v", err)
	}
	if got := s.printServer().Server.Attrs["key_grace"]; got != "1m0s" {
		t.Fatalf("a refused unset changed key_grace to %s", got)
	}
	if _, err := s.unsetServer(nil); !errors.As(err, &ae) || ae.Code != admin.CodeBadRequest {
		t.Fatalf("unset of nothing: %v", err)
	}
	s.base.Close()
	s.states.close()
	s2 := newTestServer(t, dir, &fakeClock{t: time.Now()})
	if a := s2.printServer().Server.Attrs; a["token_ttl"] != def["token_ttl"] || a["key_grace"] != "1m0s" {
		t.Fatalf("after a restart: %v", a)
	}
}
