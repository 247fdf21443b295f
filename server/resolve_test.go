package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// fakeHosts is a resolver over a table of loopback addresses; it counts
// its lookups.
type fakeHosts struct {
	mu      sync.Mutex
	table   map[string][]string
	lookups int
}

func (f *fakeHosts) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > ResolveTimeout {
		return nil, errors.New("resolver called without the ResolveTimeout deadline")
	}
	if host == "slow" {
		// What a resolver returns when the deadline passes.
		return nil, &net.DNSError{Err: "i/o timeout", Name: host, IsTimeout: true}
	}
	addrs, ok := f.table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func (f *fakeHosts) set(host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table[host] = addrs
}

func hostsServer(t *testing.T, hosts *fakeHosts) *Server {
	t.Helper()
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Resolve: hosts.resolve})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.base.Close(); s.states.close() })
	return s
}

// TestMomHostName: Mom= takes a host name, resolved once when create node
// or set node runs; the node keeps the address it got beside the name,
// also across a restart, and a name with no address, several, or one no
// node can hold is refused with what it resolved to.
func TestMomHostName(t *testing.T) {
	hosts := &fakeHosts{table: map[string][]string{
		"cn01":  {"127.0.0.51"},
		"cn02":  {"127.0.0.52", "127.0.0.52"}, // a hosts file naming it twice
		"dual":  {"127.0.0.60", "::1"},
		"none":  {},
		"wild":  {"0.0.0.0"},
		"cn01b": {"127.0.0.51"},
	}}
	s := hostsServer(t, hosts)
	ctx := context.Background()
	res, err := s.createNode(ctx, admin.CreateNodeArgs{Name: "cn01", Mom: "CN01"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Node.Mom != "127.0.0.51" || res.Node.Host != "cn01" {
		t.Fatalf("create node cn01 Mom=CN01: mom %q host %q", res.Node.Mom, res.Node.Host)
	}
	if res, err = s.createNode(ctx, admin.CreateNodeArgs{Name: "cn02", Mom: "cn02"}); err != nil || res.Node.Mom != "127.0.0.52" {
		t.Fatalf("a name listed twice with one address: %+v, %v", res, err)
	}
	if res, err = s.createNode(ctx, admin.CreateNodeArgs{Name: "ip", Mom: "127.0.0.53"}); err != nil || res.Node.Host != "" {
		t.Fatalf("create by address: %+v, %v", res, err)
	}
	for _, tc := range []struct{ mom, want string }{
		{"dual", "Mom=dual resolves to 2 addresses (127.0.0.60, ::1): a node has exactly one"},
		{"none", "Mom=none: resolves to no address"},
		{"nowhere", "Mom=nowhere: no such host"},
		{"wild", "Mom=wild resolves to 0.0.0.0: not an address a node can hold"},
		{"cn_1", `Mom="cn_1": not an IPv4 or IPv6 address, nor a host name`},
		{"slow", "Mom=slow: no answer from the resolver within 5s"},
		{"cn01b", "address 127.0.0.51 already belongs to node cn01"},
	} {
		_, err := s.createNode(ctx, admin.CreateNodeArgs{Name: "x", Mom: tc.mom})
		var ae *admin.Error
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create node x Mom=%s: %v, want %q", tc.mom, err, tc.want)
		}
	}
	if nodes, _ := s.listNodes("x"); nodes != nil {
		t.Fatal("a refused create node created x")
	}

	// set node Mom=NAME resolves again: the node moves if the name does.
	hosts.set("cn01", "127.0.0.61")
	n, err := s.setNode(ctx, admin.SetArgs{Name: "cn01", Attrs: []admin.Attr{{Name: "Mom", Value: "cn01"}}})
	if err != nil || n.Mom != "127.0.0.61" || n.Host != "cn01" {
		t.Fatalf("set node cn01 Mom=cn01 after the name moved: %+v, %v", n, err)
	}
	// By address, the name goes.
	if n, err = s.setNode(ctx, admin.SetArgs{Name: "cn01", Attrs: []admin.Attr{{Name: "Mom", Value: "127.0.0.61"}}}); err != nil || n.Host != "" {
		t.Fatalf("set node cn01 Mom=ADDR: %+v, %v", n, err)
	}
	// A name for the address it has: only the name changes.
	hosts.set("cn01c", "127.0.0.61")
	if n, err = s.setNode(ctx, admin.SetArgs{Name: "cn01", Attrs: []admin.Attr{{Name: "Mom", Value: "cn01c"}}}); err != nil || n.Host != "cn01c" || n.Mom != "127.0.0.61" {
		t.Fatalf("set node cn01 Mom=NAME of its own address: %+v, %v", n, err)
	}

	// Resolved once: a restart reads the stored address and name and asks
	// no resolver.
	before := hosts.lookups
	dir := s.cfg.StateDir
	s.base.Close()
	s.states.close()
	s2, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Resolve: hosts.resolve})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s2.base.Close(); s2.states.close() }()
	got, err := s2.listNodes("cn01")
	if err != nil || got[0].Mom != "127.0.0.61" || got[0].Host != "cn01c" {
		t.Fatalf("after a restart: %+v, %v", got, err)
	}
	if hosts.lookups != before {
		t.Fatalf("a restart resolved %d names", hosts.lookups-before)
	}
}

// Mom= naming the address the server's control listener is bound to, as
// an address or a name resolving to it, is refused; a wildcard listener
// names no address, so nothing is refused then.
func TestMomAddrNotServer(t *testing.T) {
	hosts := &fakeHosts{table: map[string][]string{"srv": {"127.0.0.1"}, "n1": {"127.0.0.2"}}}
	s := hostsServer(t, hosts)
	s.cfg.Listen = "127.0.0.1:15001"
	for _, v := range []string{"127.0.0.1", "srv", "::ffff:127.0.0.1"} {
		if _, _, err := s.momAddr(context.Background(), v); err == nil || !strings.Contains(err.Error(), "the server's own address") {
			t.Errorf("Mom=%s: %v", v, err)
		}
	}
	if a, _, err := s.momAddr(context.Background(), "n1"); err != nil || a != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("Mom=n1: %v %v", a, err)
	}
	s.cfg.Listen = "0.0.0.0:15001"
	if _, _, err := s.momAddr(context.Background(), "127.0.0.1"); err != nil {
		t.Fatalf("wildcard listener: %v", err)
	}
}
