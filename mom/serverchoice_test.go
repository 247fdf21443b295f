package mom

import (
	"net/netip"
	"testing"
	"time"
)

// ServerChoice is controlLoop's machine for a list: a lost session moves
// to the next server after at most failoverSpread, a NotLeader naming a
// member moves there at once, one naming nobody, the sender or an address
// outside the list is a failed attempt, and rounds back off to at most
// groupRoundBackoff.
func TestServerChoiceFollowsTheDaemonsRules(t *testing.T) {
	list := []string{"127.0.0.1:15001", "127.0.0.2:15001", "127.0.0.3:15001"}
	s := NewServerChoice(list, noJitter)
	if s.Current() != list[0] {
		t.Fatalf("starts on %s", s.Current())
	}
	if next, wait := s.Lost(time.Minute); next != list[1] || wait != failoverSpread {
		t.Fatalf("lost: %s after %s, want %s after %s", next, wait, list[1], failoverSpread)
	}
	// s2 names s3: followed at once.
	next, wait, followed := s.NotLeader(netip.MustParseAddrPort("127.0.0.3:15001"), time.Millisecond)
	if next != list[2] || wait != 0 || !followed {
		t.Fatalf("redirect to s3: %s after %s, followed %v", next, wait, followed)
	}
	if _, _, followed := s.NotLeader(netip.MustParseAddrPort("127.0.0.3:15001"), 0); followed {
		t.Fatal("a NotLeader naming its sender was followed")
	}
	if s.Current() != list[0] {
		t.Fatalf("after a NotLeader naming its sender: on %s, want the next server %s", s.Current(), list[0])
	}
	if _, _, followed := s.NotLeader(netip.MustParseAddrPort("127.0.0.9:15001"), 0); followed {
		t.Fatal("a NotLeader naming an address outside the list was followed")
	}
	if _, _, followed := s.NotLeader(netip.AddrPort{}, 0); followed {
		t.Fatal("a NotLeader naming no leader was followed")
	}
	// Nothing answers: the waits grow to groupRoundBackoff, never beyond.
	var longest time.Duration
	for range 30 {
		_, wait := s.Failed(time.Millisecond)
		longest = max(longest, wait)
	}
	if longest != groupRoundBackoff {
		t.Fatalf("longest wait with every server failing: %s, want %s", longest, groupRoundBackoff)
	}
	// One server: the single-server backoff, up to DefaultBackoffMax.
	one := NewServerChoice(list[:1], noJitter)
	longest = 0
	for range 30 {
		next, wait := one.Failed(time.Millisecond)
		if next != list[0] {
			t.Fatalf("one server: moved to %s", next)
		}
		longest = max(longest, wait)
	}
	if longest != DefaultBackoffMax {
		t.Fatalf("one server: longest wait %s, want %s", longest, DefaultBackoffMax)
	}
}
