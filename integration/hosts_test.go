package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/daemon"
)

// newClusterHosts is newCluster with the server resolving Mom= host names
// from the test host table hosts (daemon.HostsEnv), never from /etc/hosts
// or DNS.
func newClusterHosts(t *testing.T, hosts string, momIPs ...string) *cluster {
	t.Helper()
	return newClusterEnv(t, []string{daemon.HostsEnv + "=" + hosts}, nil, momIPs...)
}

// TestMomHostNames: create node takes Mom=HOST, resolved once to the
// node's one address, shown beside it; the MOM enrolls from that address;
// a name with two addresses or none is refused saying what it resolved
// to; print node recreates the nodes by name.
func TestMomHostNames(t *testing.T) {
	c := newClusterHosts(t, "cn01=127.0.0.31,cn02=127.0.0.32,dual=127.0.0.33,dual=::1", "127.0.0.31", "127.0.0.32")
	for _, n := range []string{"cn01", "cn02"} {
		r := c.qmgr("--json", "-c", fmt.Sprintf("create node %s Mom=%s,Port=%d", n, strings.ToUpper(n), c.imPort))
		var res struct {
			Node  struct{ Mom, Host string }
			Token string
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Node.Host != n || res.Token == "" {
			t.Fatalf("create node %s Mom=%s: exit %d %q %q", n, strings.ToUpper(n), r.code, r.stdout, r.stderr)
		}
		c.startMom(n, res.Node.Mom, res.Token)
	}
	c.waitUp("cn01")
	c.waitUp("cn02")

	r := run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "nodes")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("nodes: exit %d\n%s", r.code, r.stdout)
	}
	for i, want := range []string{"cn01 127.0.0.31", "cn02 127.0.0.32"} {
		f := strings.Fields(lines[i+1])
		if len(f) < 4 || f[0]+" "+strings.Split(f[1], ":")[0] != want || f[2] != f[0] || f[3] != "up" {
			t.Errorf("nodes line %q, want %s, its host name and up", lines[i+1], want)
		}
	}
	if r := c.qmgr("list node cn01 Mom"); r.code != 0 || r.stdout != "Node cn01\n    Mom = 127.0.0.31 (cn01)\n\n" {
		t.Errorf("list node cn01 Mom: %q %q", r.stdout, r.stderr)
	}
	if r := c.qmgr("print node"); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("create node cn01 Mom=cn01,Port=%d\n", c.imPort)) {
		t.Errorf("print node: %q", r.stdout)
	}
	for mom, want := range map[string]string{
		"dual": "Mom=dual resolves to 2 addresses (127.0.0.33, ::1): a node has exactly one; give it as Mom=ADDR, or a name with one address",
		"cn09": "Mom=cn09: no such host",
	} {
		r := c.qmgr(fmt.Sprintf("create node x Mom=%s", mom))
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("create node x Mom=%s: exit %d %q, want 2 and %q", mom, r.code, r.stderr, want)
		}
	}
	if _, ok := c.node("x"); ok {
		t.Error("a refused create node created x")
	}
}
