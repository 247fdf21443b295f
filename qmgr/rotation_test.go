package qmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// fixedExec answers every call with one result.
type fixedExec struct{ result any }

func (f fixedExec) Call(_ context.Context, _ string, _ any, out any) error {
	b, err := json.Marshal(f.result)
	if err != nil {
		return err
	}
	*out.(*json.RawMessage) = b
	return nil
}

func TestListKeyShowsRotation(t *testing.T) {
	started, deadline := t0, t0.Add(30*time.Second)
	kl := admin.KeyList{
		Keys: []admin.KeyInfo{{ID: "0a1b2c3d", State: "active", Created: t0}, {ID: "0a1b2c3e", State: "next", Created: t0}},
		Nodes: []admin.NodeKeyInfo{
			{Name: "n1", KeyID: "0a1b2c3d", KeyState: "acked", AckedKey: "0a1b2c3e", Up: true},
			{Name: "n2", KeyID: "0a1b2c3d", KeyState: "pending", Up: true},
			{Name: "n3", KeyID: "0a1b2c3d", KeyState: "needs sync"},
		},
		Rotation: admin.RotationInfo{Phase: "distributing", Seq: 2, Reason: "delete node n4", Distribution: "auto",
			OldKey: "0a1b2c3d", NewKey: "0a1b2c3e", Started: &started, Deadline: &deadline, Waiting: 2, Acked: 1, Pending: 1,
			Behind: 1, Next: "key 0a1b2c3e becomes active when 1 more node(s) acknowledge it, or at the deadline"},
	}
	var out bytes.Buffer
	s := &Session{Exec: fixedExec{kl}, Out: &out}
	if err := s.Run(context.Background(), Directive{Command: "list", Object: "key"}); err != nil {
		t.Fatal(err)
	}
	want := `Rotation 2
    phase = distributing
    distribution = auto
    reason = delete node n4
    old_key = 0a1b2c3d
    new_key = 0a1b2c3e
    started = 2026-01-02T03:04:05Z
    acked = 1 of 2
    deadline = 2026-01-02T03:04:35Z
    needs_sync = 1
    next_step = key 0a1b2c3e becomes active when 1 more node(s) acknowledge it, or at the deadline

KEY ID    STATE   CREATED
0a1b2c3d  active  2026-01-02T03:04:05Z
0a1b2c3e  next    2026-01-02T03:04:05Z

NODE  UP     KEY ID    KEY STATE
n1    True   0a1b2c3d  acked 0a1b2c3e
n2    True   0a1b2c3d  pending
n3    False  0a1b2c3d  needs sync
`
	if out.String() != want {
		t.Fatalf("list key:\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRotateKeyMessages(t *testing.T) {
	grace := t0.Add(time.Minute)
	for _, tc := range []struct {
		info admin.RotationInfo
		want string
	}{
		{admin.RotationInfo{Phase: "distributing", Seq: 3, Distribution: "manual", NewKey: "0a1b2c3e"},
			"key rotation 3 started: new key 0a1b2c3e (next), manual distribution: nothing is pushed\n" +
				"next: export key 0a1b2c3e file=PATH, run momgate-mom key import on every node, then activate key 0a1b2c3e\n"},
		{admin.RotationInfo{Phase: "grace", Seq: 3, Queued: 1}, "key rotation queued: rotation 3 is in phase grace; a new rotation starts when it ends\n"},
		{admin.RotationInfo{Phase: "distributing", Seq: 3, Queued: 1, NewKey: "0a1b2c3e"},
			"key rotation 3 restarts: key 0a1b2c3e, being distributed, is replaced by a fresh key in a moment\n"},
		{admin.RotationInfo{Phase: "grace", Seq: 4, NewKey: "0a1b2c3e", OldKey: "0a1b2c3d", GraceUntil: &grace},
			"key rotation 4: new key 0a1b2c3e is active (no MOM connected to wait for); old key 0a1b2c3d is retired at 2026-01-02T03:05:05Z\n"},
	} {
		var out bytes.Buffer
		s := &Session{Exec: fixedExec{tc.info}, Out: &out}
		if err := s.Run(context.Background(), Directive{Command: "rotate", Object: "key"}); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("rotate key:\n%q\nwant\n%q", out.String(), tc.want)
		}
	}
}
