package mom

import "testing"

// TestServerStateCounts: a switch is a session established with another
// server than the session before; failed attempts in between do not
// count, nor does a new session with the same server.
func TestServerStateCounts(t *testing.T) {
	s := newServerState([]string{"a:1", "b:1", "c:1"})
	if v := s.view(); v.Current != "a:1" || v.On || v.Sessions != 0 {
		t.Fatalf("at start: %+v", v)
	}
	steps := []struct {
		dial               string
		up                 bool
		sessions, switches uint64
	}{
		{"a:1", true, 1, 0},  // first session: no switch
		{"b:1", false, 1, 0}, // a lost, b refused
		{"c:1", true, 2, 1},  // on c: a switch
		{"c:1", true, 3, 1},  // c again (a restart): no switch
		{"a:1", false, 3, 1},
		{"b:1", true, 4, 2},
	}
	for i, st := range steps {
		s.dialling(st.dial)
		if st.up {
			s.established()
			s.established() // idempotent within a session
		}
		v := s.view()
		if v.Current != st.dial || v.On != st.up || v.Sessions != st.sessions || v.Switches != st.switches {
			t.Fatalf("step %d: %+v", i, v)
		}
		s.ended()
		if s.view().On {
			t.Fatalf("step %d: still on after ended", i)
		}
	}
	s.redirect(redirectFollowed)
	s.redirect(redirectOutside)
	s.redirect(redirectOutside)
	if r := s.view().Redirects; r[redirectFollowed] != 1 || r[redirectOutside] != 2 || r[redirectNoLeader] != 0 || len(r) != 3 {
		t.Fatalf("redirects %v", r)
	}
}
