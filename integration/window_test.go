package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
)

// TestConcurrentSwapsSameSender (issue 16): a mother superior with several
// jobs on one sister opens several IM connections at once, whose PINGs
// reach the sister out of order. 100 rounds of two simultaneous
// `momgate-mom ping` from a to b are all admitted; and PINGs of a sealed
// together and delivered together (a thief holding a's keys seals exactly
// what a would) are all admitted, and every replay of them is refused.
func TestConcurrentSwapsSameSender(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)
	thief := stealKeys(t, a)
	base := c.momCounters(b)
	const rounds, width = 100, 2
	for round := 0; round < rounds; round++ {
		// The daemons' own swaps.
		results := make([]string, width)
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = pingOnce(a.dir, target)
			}()
		}
		// Captures of a's PINGs, delivered together.
		caps := make([]capture, width)
		for i := range caps {
			caps[i] = thief.seal("127.0.0.2", "127.0.0.3")
		}
		errs := deliverAll(thief, target, caps)
		wg.Wait()
		for i, r := range results {
			if r != "" {
				t.Fatalf("round %d: momgate-mom ping %d refused: %s", round, i, r)
			}
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: concurrent PING %d refused: %v", round, i, err)
			}
		}
		// Every replay of them is refused, delivered together too.
		for i, err := range deliverAll(thief, target, caps) {
			wantReject(t, fmt.Sprintf("round %d: replay %d", round, i), err, proto.RejectReplay)
		}
	}
	got := c.momCounters(b)
	if admitted := got.Accepted - base.Accepted; admitted < rounds*width*2 {
		t.Fatalf("b admitted %d, want at least %d", admitted, rounds*width*2)
	}
}

// pingOnce runs `momgate-mom ping` and returns "" if the swap was
// admitted, else what went wrong. Safe in any goroutine.
func pingOnce(dir, target string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var so, se bytes.Buffer
	cmd := exec.CommandContext(ctx, bin("momgate-mom"), "ping", "--json", "--state-dir", dir, target)
	cmd.Stdout, cmd.Stderr = &so, &se
	_ = cmd.Run()
	var pr pingResult
	if err := json.Unmarshal(so.Bytes(), &pr); err != nil {
		return fmt.Sprintf("ping --json: %v in %q (stderr %q)", err, so.String(), se.String())
	}
	if !pr.Admitted {
		return fmt.Sprintf("%+v", pr)
	}
	return ""
}

// deliverAll sends every capture on its own connection from a's address at
// once and returns each outcome (nil: admitted).
func deliverAll(in *insider, target string, caps []capture) []error {
	errs := make([]error, len(caps))
	var wg sync.WaitGroup
	for i, cp := range caps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = in.deliver("127.0.0.2", target, cp)
		}()
	}
	wg.Wait()
	return errs
}
