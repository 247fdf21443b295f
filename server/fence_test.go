package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/member"
	"github.com/momgate/momgate/replica"
)

// A write whose outcome is unknown fences the server's writes: the next
// write is refused without being proposed, and the restart from the
// committed state is asked for; once the fence is lifted (becomeLeader,
// after its barrier) writes are proposed again.
func TestUnknownOutcomeFencesWrites(t *testing.T) {
	var proposed int
	outcome := member.ErrOutcomeUnknown
	g := &groupRunner{gc: GroupConfig{CommitTimeout: time.Second}, log: logrus.New(), resync: make(chan struct{}, 1),
		apply: func(context.Context, replica.Command) (replica.Result, error) {
			proposed++
			return replica.Result{}, outcome
		}}
	rec := []replica.StateRecord{{Kind: replica.RecordToken, Key: "00", Deleted: true}}
	if err := g.commit("enroll n1", rec); !errors.Is(err, member.ErrOutcomeUnknown) {
		t.Fatalf("first write: %v, want the unknown outcome", err)
	}
	select {
	case <-g.resync:
	default:
		t.Fatal("no restart asked for after an unknown outcome")
	}
	outcome = nil
	if err := g.commit("enroll n1 again", rec); !errors.Is(err, ErrWritesFenced) {
		t.Fatalf("write after an unknown outcome: %v, want ErrWritesFenced", err)
	}
	if proposed != 1 {
		t.Fatalf("%d writes proposed, want 1: a fenced write reached the group", proposed)
	}
	g.fenced.Store(false) // what becomeLeader does after its barrier
	if err := g.commit("enroll n1 again", rec); err != nil || proposed != 2 {
		t.Fatalf("write after the restart: %v, %d proposed", err, proposed)
	}
}
