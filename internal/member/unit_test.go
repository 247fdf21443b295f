package member

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/replica/replicatest"
)

func TestFSMHaltsOnACommandItCannotDecode(t *testing.T) {
	reg := replicatest.New()
	log := logrus.New()
	log.Out = nopWriter{}
	f := &fsm{sm: reg, log: log}
	c, _ := createNode("n1")
	good, err := replica.Encode(replica.Entry{At: time.Now(), Cmd: c})
	if err != nil {
		t.Fatal(err)
	}
	newer := append([]byte{replica.Version + 1}, good[1:]...)
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: newer}).(replica.Result); !errors.Is(res.Err, ErrHalted) || !errors.Is(res.Err, replica.ErrUnsupported) {
		t.Fatalf("newer command: %v", res.Err)
	}
	// Nothing after it is applied: the state stays as of the entry before.
	if res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: good}).(replica.Result); !errors.Is(res.Err, ErrHalted) {
		t.Fatalf("command after the halt: %v", res.Err)
	}
	if len(reg.Names()) != 0 {
		t.Fatal("a halted member applied a command")
	}
	if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
		t.Fatalf("a halted member offered a snapshot: %v", err)
	}
	// Configuration entries are raft's, not the state's.
	if res := f.Apply(&raft.Log{Index: 3, Type: raft.LogConfiguration}).(replica.Result); res.Err != nil {
		t.Fatalf("configuration entry: %v", res.Err)
	}
}

func TestPeerStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const down = 2 * time.Second
	for _, tc := range []struct {
		name   string
		p      raftnet.PeerContact
		known  bool
		health Health
		sync   bool
		behind uint64
		state  string
	}{
		{"never heard", raftnet.PeerContact{}, false, HealthDown, true, 100, "down, needs sync (100 behind)"},
		{"in sync", raftnet.PeerContact{LastContact: now.Add(-time.Second), LastLog: 100}, true, HealthAlive, false, 0, "alive"},
		{"behind", raftnet.PeerContact{LastContact: now, LastLog: 58}, true, HealthAlive, true, 42, "needs sync (42 behind)"},
		{"snapshot", raftnet.PeerContact{LastContact: now, LastLog: 100, Snapshot: true}, true, HealthAlive, true, 0, "needs sync (0 behind)"},
		{"silent", raftnet.PeerContact{LastContact: now.Add(-3 * time.Second), LastLog: 100}, true, HealthDown, false, 0, "down"},
		{"silent and behind", raftnet.PeerContact{LastContact: now.Add(-3 * time.Second), LastLog: 90}, true, HealthDown, true, 10, "down, needs sync (10 behind)"},
	} {
		h, sync, behind, _ := peerStatus(tc.p, tc.known, 100, now, down)
		ms := MemberStatus{Health: h, NeedsSync: sync, Behind: behind}
		if h != tc.health || sync != tc.sync || behind != tc.behind || ms.State() != tc.state {
			t.Errorf("%s: %s %v %d %q, want %s %v %d %q", tc.name, h, sync, behind, ms.State(), tc.health, tc.sync, tc.behind, tc.state)
		}
	}
}
