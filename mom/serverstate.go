package mom

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/momgate/momgate/internal/metrics"
)

// The control loop's record of the server list for status and metrics:
// which server it dials or is on, how often it switched, the redirects it
// met. controlLoop writes it; Status and the collectors read it.

// Redirect outcomes, the label of server_redirects_total.
const (
	redirectFollowed = "followed"     // the leader named is in the list: dialled next
	redirectNoLeader = "no_leader"    // no leader known (or the sender named itself)
	redirectOutside  = "outside_list" // the leader named is not in the list: never dialled
)

// serverState is the MOM's view of its servers.
type serverState struct {
	list []string // --server, parsed (ParseServers); fixed after New

	mu        sync.Mutex
	cur       string            // the server dialled last (the one it is on while connected)
	on        bool              // a session with cur is established
	last      string            // the server of the last established session; "" before the first
	switches  uint64            // sessions established on another server than the one before
	sessions  uint64            // sessions established
	redirects map[string]uint64 // NotLeader frames met, by outcome
}

func newServerState(list []string) *serverState {
	s := &serverState{list: list, redirects: map[string]uint64{}}
	if len(list) > 0 {
		s.cur = list[0]
	}
	return s
}

// dialling records that the control loop dials addr now.
func (s *serverState) dialling(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur, s.on = addr, false
}

// established records that the session with the server dialled is up.
func (s *serverState) established() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		return
	}
	s.on = true
	s.sessions++
	if s.last != "" && s.last != s.cur {
		s.switches++
	}
	s.last = s.cur
}

// ended records that the attempt or session on the current server ended.
func (s *serverState) ended() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on = false
}

// redirect counts a NotLeader by outcome.
func (s *serverState) redirect(outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirects[outcome]++
}

// current is the server dialled last, or the one the MOM is on.
func (s *serverState) current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// serverView is a snapshot of serverState.
type serverView struct {
	Current            string
	On                 bool
	Switches, Sessions uint64
	Redirects          map[string]uint64
}

func (s *serverState) view() serverView {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := make(map[string]uint64, 3)
	for _, k := range []string{redirectFollowed, redirectNoLeader, redirectOutside} {
		r[k] = s.redirects[k]
	}
	return serverView{Current: s.cur, On: s.on, Switches: s.switches, Sessions: s.sessions, Redirects: r}
}

// collectorSet is several collectors registered as one.
type collectorSet []prometheus.Collector

// Describe describes every collector of the set.
func (cs collectorSet) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

// Collect collects every collector of the set.
func (cs collectorSet) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// collector is the server list's metrics, as one collector.
func (s *serverState) collector() prometheus.Collector {
	return collectorSet{
		metrics.NewGaugeFunc("control_server", "1 for the server of the list the control session is established with, 0 for the others.", "server",
			func() map[string]float64 {
				v := s.view()
				out := make(map[string]float64, len(s.list))
				for _, a := range s.list {
					out[a] = metrics.Bool(v.On && a == v.Current)
				}
				return out
			}),
		metrics.NewCounterFunc("server_switches_total", "Control sessions established with another server of the list than the session before (failovers).", "",
			func() map[string]float64 { return metrics.One(float64(s.view().Switches)) }),
		metrics.NewCounterFunc("control_sessions_total", "Control sessions established with a server.", "",
			func() map[string]float64 { return metrics.One(float64(s.view().Sessions)) }),
		metrics.NewCounterFunc("server_redirects_total", "NotLeader redirects from followers, by outcome: followed (the leader is in the list), no_leader, outside_list (never dialled).", "outcome",
			func() map[string]float64 {
				out := map[string]float64{}
				for k, n := range s.view().Redirects {
					out[k] = float64(n)
				}
				return out
			}),
	}
}
