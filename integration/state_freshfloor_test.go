package integration

// Issue 16 item 2, the last window: a MOM that lost its marks admits a
// sender again only on a stamp the sender provably made after the loss
// (the server's FloorProbe and the sender's FloorStamp on its sealed
// control session, docs/PROTOCOL.md section 4.9), not on the stamps of the
// heartbeats the server last admitted, above which a PING sealed in the
// seconds before the loss can lie. No clock is trusted: freshness=0, and a
// sender whose clock runs ahead.

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/store"
)

// TestRecoveryFreshFloor: b loses its marks; PINGs of a captured in the
// seconds before the loss (one b admitted, one never delivered) are
// refused after the recovery, and a's own PINGs are admitted once the
// server has attested a's fresh stamp, with freshness=0 (where nothing
// else can admit a) and with a 30 s ahead (where the recovery floor plus
// the freshness window would refuse a for five minutes). The captures
// stay refused after.
func TestRecoveryFreshFloor(t *testing.T) {
	cases := []struct {
		name         string
		offset       time.Duration // a's clock offset
		aArgs, bArgs []string
	}{
		{"freshness=0", 0, []string{"--heartbeat", "10s"}, []string{"--freshness", "0"}},
		{"sender ahead", 30 * time.Second, []string{"--heartbeat", "10s", "--test-clock-offset", "30s"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "127.0.0.2", "127.0.0.3")
			// a heartbeats every 10 s: the server's last two stamps of a
			// are seconds older than what a sealed just before the loss,
			// as they are in a real cluster.
			if r := c.qmgr("set server heartbeat=10s"); r.code != 0 {
				t.Fatalf("set heartbeat: %s", r.stderr)
			}
			b := c.addMomWith("b", "127.0.0.3", tc.bArgs...)
			a := c.addMomWith("a", "127.0.0.2", tc.aArgs...)
			target := b.imAddr(c.imPort)
			waitFor(t, "b to admit a", 30*time.Second, func() bool {
				pr, _ := c.ping(a, target)
				return pr.Admitted
			})
			// The server holds two stamps of a (the swap's and a
			// heartbeat's): what the heartbeat attestation needs.
			seen := lastSeen(t, c, "a")
			waitFor(t, "a heartbeat of a after its swap", 30*time.Second, func() bool {
				return lastSeen(t, c, "a").After(seen)
			})
			// Two PINGs of a, stamped on a's clock in the last second
			// before the loss: above the older of a's last two heartbeat
			// stamps, which the heartbeat attestation gives.
			thief := stealKeys(t, a)
			delivered := thief.sealAged("127.0.0.2", "127.0.0.3", -tc.offset)
			if err := thief.deliver("127.0.0.2", target, delivered); err != nil {
				t.Fatalf("the capture, before the loss: %v", err)
			}
			kept := thief.sealAged("127.0.0.2", "127.0.0.3", -tc.offset)
			b.stop()
			removeFile(t, filepath.Join(b.dir, store.MarkLogName))
			removeFile(t, filepath.Join(b.dir, store.MarkSnapName))
			b = c.startMomWith("b", "127.0.0.3", "", tc.bArgs...)
			c.waitAdmin(b)
			waitLogged(t, b.proc, "level=error msg=\"state loss: ")
			c.waitUp("b")
			wantRefusedAny(t, "the capture b admitted before the loss", thief.deliver("127.0.0.2", target, delivered))
			wantRefusedAny(t, "the capture never delivered", thief.deliver("127.0.0.2", target, kept))
			waitFor(t, "b to admit a on a's fresh stamp", 30*time.Second, func() bool {
				pr, _ := c.ping(a, target)
				return pr.Admitted
			})
			wantRefusedAny(t, "the capture b admitted, after a is vouched for", thief.deliver("127.0.0.2", target, delivered))
			wantRefusedAny(t, "the capture never delivered, after a is vouched for", thief.deliver("127.0.0.2", target, kept))
			if pr, r := c.ping(a, target); !pr.Admitted {
				t.Fatalf("a's next PING: %+v (stderr %q)", pr, r.stderr)
			}
		})
	}
}

// lastSeen is the server's last contact with node name (a heartbeat).
func lastSeen(t *testing.T, c *cluster, name string) time.Time {
	t.Helper()
	r := c.qmgr("--json", "-c", "list node")
	var ns []struct {
		Name     string     `json:"name"`
		LastSeen *time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
		t.Fatalf("list node --json: %v in %q", err, r.stdout)
	}
	for _, n := range ns {
		if n.Name == name && n.LastSeen != nil {
			return *n.LastSeen
		}
	}
	return time.Time{}
}
