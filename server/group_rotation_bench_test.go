package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/member"
	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/replica"
)

// benchMembers, when above zero, makes newBenchEnv's server commit its
// writes through a group of that many members in this process (each a
// replica without a server, on 127.0.0.1..n), as a leader does.
var benchMembers int

// benchReplicate returns the Config.Replicate of a fresh in-process group
// of benchMembers members, or nil.
func benchReplicate(tb testing.TB) func(string, []replica.StateRecord) error {
	if benchMembers <= 0 {
		return nil
	}
	ca, err := group.NewCA(rand.Reader, time.Now(), "bench")
	if err != nil {
		tb.Fatal(err)
	}
	var ms []*member.Member
	var addrs []string
	for i := 0; i < benchMembers; i++ {
		name := fmt.Sprintf("s%d", i+1)
		creds, err := group.NewCredentials(group.CredentialsConfig{CA: ca, Member: name, Now: time.Now, Rand: rand.Reader})
		if err != nil {
			tb.Fatal(err)
		}
		layer, err := raftnet.Listen(raftnet.Config{Listen: fmt.Sprintf("127.0.0.%d:0", i+1), Credentials: creds})
		if err != nil {
			tb.Fatal(err)
		}
		m, err := member.Open(member.Config{Name: name, Dir: tb.TempDir(), Transport: raftnet.NewTransport(layer, raftnet.TransportConfig{}),
			State: newGroupState(), Timing: benchTiming})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { m.Close() })
		ms, addrs = append(ms, m), append(addrs, layer.Addr().String())
	}
	if err := ms[0].Bootstrap(addrs[0]); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := ms[0].Status(); err == nil && st.Leader == "s1" {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("s1 did not lead")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	for i := 1; i < benchMembers; i++ {
		if err := ms[0].AddVoter(ctx, fmt.Sprintf("s%d", i+1), addrs[i]); err != nil {
			tb.Fatal(err)
		}
	}
	leader := ms[0]
	return func(why string, recs []replica.StateRecord) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := leader.Apply(ctx, &replica.StateRecords{Why: why, Records: recs})
		if err != nil {
			return err
		}
		return res.Err
	}
}

// BenchmarkRotationLoopbackGroup3 is BenchmarkRotationLoopback with every
// persisted rotation step committed by a group of three members.
func BenchmarkRotationLoopbackGroup3(b *testing.B) {
	benchMembers = 3
	defer func() { benchMembers = 0 }()
	benchLoopback(b, true)
}

// BenchmarkRotationLoopbackGroup3WithGrace is the same with key_grace=1s
// run by the server's clock: distribute to retire, the goal.
func BenchmarkRotationLoopbackGroup3WithGrace(b *testing.B) {
	benchMembers = 3
	defer func() { benchMembers = 0 }()
	benchLoopback(b, false)
}
