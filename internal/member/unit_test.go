package member

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/replica"
)

func TestFSMHaltsOnACommandItCannotDecode(t *testing.T) {
	c, _ := createNode("n1")
	good, err := replica.Encode(replica.Entry{At: time.Now(), Cmd: c})
	if err != nil {
		t.Fatal(err)
	}
	newer := append([]byte{replica.Version + 1}, good[1:]...)
	// Op 1 is retired (create_node of the first design): the same body
	// under it is no command of this build.
	retired := append([]byte{replica.Version, 1}, good[2:]...)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"newer version", newer, replica.ErrUnsupported},
		{"retired op", retired, replica.ErrBadCommand},
	} {
		st := newTestState()
		log := logrus.New()
		log.Out = nopWriter{}
		f := &fsm{sm: st, log: log}
		if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: tc.b}).(replica.Result); !errors.Is(res.Err, ErrHalted) || !errors.Is(res.Err, tc.want) {
			t.Fatalf("%s: %v", tc.name, res.Err)
		}
		// Nothing after it is applied: the state stays as of the entry before.
		if res := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: good}).(replica.Result); !errors.Is(res.Err, ErrHalted) {
			t.Fatalf("%s: command after the halt: %v", tc.name, res.Err)
		}
		if len(st.Names()) != 0 || st.Applied() != 0 {
			t.Fatalf("%s: a halted member applied a command", tc.name)
		}
		if _, err := f.Snapshot(); !errors.Is(err, ErrHalted) {
			t.Fatalf("%s: a halted member offered a snapshot: %v", tc.name, err)
		}
		// Configuration entries are raft's, not the state's.
		if res := f.Apply(&raft.Log{Index: 3, Type: raft.LogConfiguration}).(replica.Result); res.Err != nil {
			t.Fatalf("%s: configuration entry: %v", tc.name, res.Err)
		}
	}
	// The same fsm applies the good command when nothing came before it.
	st := newTestState()
	f := &fsm{sm: st, log: logrus.New()}
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: good}).(replica.Result); res.Err != nil || !st.Node("n1") {
		t.Fatalf("good command: %v", res.Err)
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
