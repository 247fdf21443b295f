package mom

import (
	"testing"
	"time"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// floorMom is a MOM with only what attest needs: a guard (recovering or
// not) and a control writer that hands every lookup to answer, whose
// reply (if any) comes back as the server's would.
func floorMom(t *testing.T, recovering, probe bool, answer func(proto.Message) *proto.FloorAnswer) (*Mom, *[]proto.Message) {
	t.Helper()
	g := ping.NewGuard(ping.GuardConfig{Freshness: 0, Recovery: ping.Recovery{Active: recovering}}, nil)
	m := &Mom{ctl: newLink(), names: newNameBook(), base: &daemon.Base{Verifier: &ping.Verifier{Guard: g}}}
	var sent []proto.Message
	m.setControlWriter(func(msg proto.Message) error {
		sent = append(sent, msg)
		if a := answer(msg); a != nil {
			go m.ctl.answerFloor(a)
		}
		return nil
	}, proto.V2)
	m.ctl.setFloorProbe(probe)
	return m, &sent
}

// TestAttestRecovery: a MOM that did not lose marks asks FloorLookup and
// counts an attested answer; one that lost them asks RecoveryLookup and
// counts only a fresh answer, and without the Welcome's confirmation (an
// older server, an unsealed session) asks nothing and gets none.
func TestAttestRecovery(t *testing.T) {
	node := proto.NodeID{9}
	reply := func(status uint8, floor uint64) func(proto.Message) *proto.FloorAnswer {
		return func(msg proto.Message) *proto.FloorAnswer {
			var id uint32
			switch q := msg.(type) {
			case *proto.FloorLookup:
				id = q.ID
			case *proto.RecoveryLookup:
				id = q.ID
			}
			return &proto.FloorAnswer{ID: id, Node: node, Status: status, Floor: floor}
		}
	}
	cases := []struct {
		name              string
		recovering, probe bool
		answer            func(proto.Message) *proto.FloorAnswer
		want              ping.Attestation
		lookup            proto.Type // 0: nothing sent
	}{
		{"normal, attested", false, true, reply(proto.FloorAttested, 7), ping.Attestation{Floor: 7, OK: true}, proto.TypeFloorLookup},
		{"normal, unknown", false, false, reply(proto.FloorUnknown, 0), ping.Attestation{}, proto.TypeFloorLookup},
		{"recovering, fresh", true, true, reply(proto.FloorFresh, 8), ping.Attestation{Floor: 8, OK: true, Fresh: true}, proto.TypeRecoveryLookup},
		{"recovering, heartbeat answer", true, true, reply(proto.FloorAttested, 8), ping.Attestation{}, proto.TypeRecoveryLookup},
		{"recovering, unknown", true, true, reply(proto.FloorUnknown, 0), ping.Attestation{}, proto.TypeRecoveryLookup},
		{"recovering, server without the probe", true, false, reply(proto.FloorFresh, 8), ping.Attestation{}, 0},
	}
	for _, tc := range cases {
		m, sent := floorMom(t, tc.recovering, tc.probe, tc.answer)
		if got := m.attest(node); got != tc.want {
			t.Errorf("%s: attestation %+v, want %+v", tc.name, got, tc.want)
		}
		switch {
		case tc.lookup == 0 && len(*sent) != 0:
			t.Errorf("%s: sent %v, want nothing", tc.name, *sent)
		case tc.lookup != 0 && (len(*sent) != 1 || (*sent)[0].Type() != tc.lookup):
			t.Errorf("%s: sent %v, want one %s", tc.name, *sent, tc.lookup)
		}
	}
}

// TestAttestRecoveryConnectionEnds: a recovery lookup pending on a control
// connection that ends gives no attestation at once, and the next
// connection carries no probe until its Welcome confirms it.
func TestAttestRecoveryConnectionEnds(t *testing.T) {
	m, _ := floorMom(t, true, true, func(proto.Message) *proto.FloorAnswer { return nil })
	done := make(chan ping.Attestation, 1)
	go func() { done <- m.attest(proto.NodeID{3}) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.ctl.mu.Lock()
		n := len(m.ctl.floors)
		m.ctl.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	m.setControlWriter(nil, 0) // the connection ends (a failover, a NotLeader)
	if a := <-done; a.OK {
		t.Fatalf("attested on an ended connection: %+v", a)
	}
	m.setControlWriter(func(proto.Message) error { return nil }, proto.V2)
	if a := m.attest(proto.NodeID{3}); a.OK {
		t.Fatalf("attested on a new connection whose Welcome did not confirm the probe: %+v", a)
	}
	m.ctl.mu.Lock()
	n := len(m.ctl.floors)
	m.ctl.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d lookups left pending", n)
	}
}

// TestAnswerProbe: a FloorProbe is answered with its id and the next stamp
// of the MOM's stamper: above every stamp it gave before (its PINGs').
func TestAnswerProbe(t *testing.T) {
	st, err := ping.NewStamper(func() time.Time { return time.Unix(1764000000, 0) }, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := &Mom{ctl: newLink(), base: &daemon.Base{Stamper: st}}
	var sent []proto.Message
	m.setControlWriter(func(msg proto.Message) error { sent = append(sent, msg); return nil }, proto.V2)
	before, err := st.Next() // a PING's stamp
	if err != nil {
		t.Fatal(err)
	}
	m.answerProbe(&proto.FloorProbe{ID: 77})
	if len(sent) != 1 {
		t.Fatalf("sent %v", sent)
	}
	fs, ok := sent[0].(*proto.FloorStamp)
	if !ok || fs.ID != 77 || fs.Stamp <= before {
		t.Fatalf("answer %+v, want id 77 and a stamp above %d", sent[0], before)
	}
	after, err := st.Next()
	if err != nil || after <= fs.Stamp {
		t.Fatalf("the next PING's stamp %d is not above the probe's %d (%v)", after, fs.Stamp, err)
	}
}
