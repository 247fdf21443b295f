package integration

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// forger seals PINGs with a MOM's own key material, as an attacker who
// stole the cluster key, or a test, would.
func forger(t *testing.T, m *momProc, ring *keys.Keyring) *ping.Sealer {
	t.Helper()
	var enr struct {
		NodeID string `json:"node_id"`
	}
	data, err := os.ReadFile(filepath.Join(m.dir, "mom.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &enr); err != nil {
		t.Fatal(err)
	}
	if ring == nil {
		if ring, err = keystore.LoadKeyring(filepath.Join(m.dir, "keyring.json")); err != nil {
			t.Fatal(err)
		}
	}
	st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &ping.Sealer{Keys: keys.NewHolder(ring), Stamper: st, Rand: rand.Reader, Node: proto.NodeID(uuid.MustParse(enr.NodeID))}
}

// rawSwap dials target from local and sends one Ping claiming sender.
func rawSwap(t *testing.T, local, target string, s *ping.Sealer, sender string) error {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst, _, _ := net.SplitHostPort(target)
	frame, rnd, err := sessionPing(s, session.ChannelIM, mustAddr(sender), mustAddr(dst))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	v := &ping.Verifier{Keys: s.Keys, Guard: ping.NewGuard(ping.GuardConfig{Freshness: 0}, nil), Now: time.Now}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return readSessionReply(c, v, rnd)
}

func mustAddr(s string) proto.Addr {
	a, err := proto.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

func rejectCode(t *testing.T, err error) proto.RejectCode {
	t.Helper()
	var rj *handshake.RejectError
	if !errors.As(err, &rj) {
		t.Fatalf("want a Reject from the MOM, got %v", err)
	}
	return rj.Code
}

// TestAddressMismatchRefused: a PING sealed with the right key but naming
// another node's address is refused, logged and counted; so is a PING
// under a key the receiver does not hold, as a key mismatch.
func TestAddressMismatchRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.9")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)

	// The real thing from a's address is admitted.
	if err := rawSwap(t, "127.0.0.2", target, forger(t, a, nil), "127.0.0.2"); err != nil {
		t.Fatalf("genuine ping refused: %v", err)
	}
	// From 127.0.0.9, claiming to be a at 127.0.0.2.
	err := rawSwap(t, "127.0.0.9", target, forger(t, a, nil), "127.0.0.2")
	if code := rejectCode(t, err); code != proto.RejectAddrMismatch {
		t.Fatalf("spoofed source: reject code %d, want %d (%v)", code, proto.RejectAddrMismatch, err)
	}
	// Sealed under a key of another cluster.
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	foreign, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	err = rawSwap(t, "127.0.0.2", target, forger(t, a, foreign), "127.0.0.2")
	if code := rejectCode(t, err); code != proto.RejectUnknownKey {
		t.Fatalf("foreign key: reject code %d, want %d (%v)", code, proto.RejectUnknownKey, err)
	}

	st := c.status(b)
	if st.Audit.Rejected["addr_mismatch"] != 1 || st.Audit.Rejected["key_mismatch"] != 1 {
		t.Fatalf("rejection counters %v, want addr_mismatch=1 key_mismatch=1", st.Audit.Rejected)
	}
	for _, p := range c.peers(b) {
		if strings.HasPrefix(p.Addr, "127.0.0.9") {
			t.Fatalf("spoofing address admitted: %+v", p)
		}
	}
	waitFor(t, "audit lines", 10*time.Second, func() bool {
		data, _ := os.ReadFile(filepath.Join(b.dir, "audit.log"))
		s := string(data)
		return strings.Contains(s, "addr_mismatch") && strings.Contains(s, "key_mismatch") && strings.Contains(s, "127.0.0.9")
	})
}

// TestBadCLIInput: every bad directive, flag or value gets a clear message
// and a non-zero exit, and changes nothing.
func TestBadCLIInput(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	c.createNode("a", "127.0.0.2")
	before := c.qmgr("--json", "-c", "print server").stdout

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"-c", "frobnicate node a"}, "frobnicate"},
		{"duplicate node", []string{"-c", "create node a Mom=127.0.0.5"}, "already exists"},
		{"duplicate address", []string{"-c", "create node b Mom=127.0.0.2"}, "already belongs"},
		{"bad address", []string{"-c", "create node b Mom=not-an-ip"}, "Mom"},
		{"bad port", []string{"-c", "create node b Mom=127.0.0.5,Port=70000"}, "Port"},
		{"missing Mom", []string{"-c", "create node b"}, "Mom"},
		{"unknown node", []string{"-c", "delete node ghost"}, "ghost"},
		{"bad mode", []string{"-c", "set server mode=fast"}, "mode"},
		{"unknown attribute", []string{"-c", "set server colour=blue"}, "colour"},
		{"bad duration", []string{"-c", "set server token_ttl=soon"}, "token_ttl"},
		{"ambiguous abbreviation", []string{"-c", "e key"}, ""},
		{"unknown flag", []string{"--frobnicate"}, "frobnicate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := c.qmgr(tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0 for %v: %s", tc.args, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("message %q does not mention %q", r.stderr, tc.want)
			}
		})
	}
	// A script stops at its first bad directive.
	r := run(t, "create node b Mom=127.0.0.6\ncreate node a Mom=127.0.0.7\ncreate node c Mom=127.0.0.8\n",
		"momgate-qmgr", "--state-dir", c.srvDir)
	if r.code == 0 {
		t.Fatal("script with a duplicate node exited 0")
	}
	if _, ok := c.node("c"); ok {
		t.Fatal("script went on after a failed directive")
	}
	if r := c.qmgr("-c", "delete node b"); r.code != 0 {
		t.Fatalf("cleanup: %s", r.stderr)
	}
	if after := c.qmgr("--json", "-c", "print server").stdout; after != before {
		t.Fatalf("failed directives changed the server:\nbefore %s\nafter  %s", before, after)
	}

	// Daemon flags and files.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mom without token", []string{"momgate-mom", "run", "--state-dir", filepath.Join(t.TempDir(), "mom"), "--listen", "127.0.0.2:1"}, "enroll"},
		{"mom bad token", []string{"momgate-mom", "run", "--state-dir", t.TempDir(), "--listen", "127.0.0.2:1", "--enroll", "mgt1_xyz"}, "token"},
		{"mom wildcard listen", []string{"momgate-mom", "run", "--state-dir", t.TempDir(), "--listen", "0.0.0.0:15003", "--enroll", "x"}, "wildcard"},
		{"mom bad server", []string{"momgate-mom", "run", "--state-dir", t.TempDir(), "--listen", "127.0.0.2:1", "--server", "nowhere:0"}, "--server \"nowhere:0\": bad server list: element 1"},
		{"mom server list with an empty element", []string{"momgate-mom", "run", "--state-dir", t.TempDir(), "--listen", "127.0.0.2:1", "--server", "127.0.0.1:1,,127.0.0.3:1"}, "element 2 of \"127.0.0.1:1,,127.0.0.3:1\" is empty"},
		{"mom server list with a duplicate", []string{"momgate-mom", "run", "--state-dir", t.TempDir(), "--listen", "127.0.0.2:1", "--server", "127.0.0.1,127.0.0.1:15001"}, "repeats element 1"},
		{"server not initialized", []string{"momgate-server", "run", "--state-dir", privateTempDir(t)}, "init"},
		{"server init on a running server", []string{"momgate-server", "init", "--state-dir", c.srvDir}, "in use by another process"},
		{"server bad log format", []string{"momgate-server", "run", "--state-dir", c.srvDir, "--log-format", "xml"}, "log-format"},
		{"qmgr no server", []string{"momgate-qmgr", "-c", "list node"}, "--state-dir"},
		{"qmgr server down", []string{"momgate-qmgr", "--state-dir", t.TempDir(), "-c", "list node"}, "momgate-server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, "", tc.args...)
			if r.code == 0 {
				t.Fatalf("exit 0: %s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("message %q does not mention %q", r.stderr, tc.want)
			}
		})
	}
}

// TestInsecureKeyFileRefused: a MOM whose keyring became world-readable
// refuses to start and says how to fix it.
func TestInsecureKeyFileRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	a := c.addMom("a", "127.0.0.2")
	a.stop()
	path := filepath.Join(a.dir, "keyring.json")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "momgate-mom", "run", "--state-dir", a.dir, "--server", c.srvAddr, "--listen", a.imAddr(c.imPort))
	if r.code == 0 || !strings.Contains(r.stderr, "0644") || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("world-readable keyring: exit %d, %q", r.code, r.stderr)
	}
}

// TestInsecureStateDirRefused: a state directory at 0755, or a state
// file at 0640, stops either daemon at start with the chmod that fixes it,
// and the daemon starts once it is run.
func TestInsecureStateDirRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	a := c.addMom("a", "127.0.0.2")
	a.stop()
	c.server.stop()
	for _, tc := range []struct {
		daemon, dir, file string
		mode              os.FileMode
		fix               string
	}{
		{"momgate-server", c.srvDir, "", 0o755, "chmod 700 " + c.srvDir},
		{"momgate-server", c.srvDir, "state.json", 0o640, "chmod 600 " + filepath.Join(c.srvDir, "state.json")},
		{"momgate-mom", a.dir, "", 0o750, "chmod 700 " + a.dir},
		{"momgate-mom", a.dir, "mom.json", 0o644, "chmod 600 " + filepath.Join(a.dir, "mom.json")},
	} {
		path := filepath.Join(tc.dir, tc.file)
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		args := []string{tc.daemon, "run", "--state-dir", tc.dir, "--listen", c.srvAddr}
		if tc.daemon == "momgate-mom" {
			args = []string{tc.daemon, "run", "--state-dir", tc.dir, "--server", c.srvAddr, "--listen", a.imAddr(c.imPort)}
		}
		r := run(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, fmt.Sprintf("%s has mode %04o", path, tc.mode)) || !strings.Contains(r.stderr, tc.fix) {
			t.Fatalf("%s with %s at %04o: exit %d, %q; want the mode and %q", tc.daemon, path, tc.mode, r.code, r.stderr, tc.fix)
		}
		restore := os.FileMode(0o600)
		if tc.file == "" {
			restore = 0o700
		}
		if err := os.Chmod(path, restore); err != nil {
			t.Fatal(err)
		}
	}
	c.startServer()
	c.startMom("a", "127.0.0.2", "")
	c.waitUp("a")
}
