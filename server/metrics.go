package server

import (
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/momgate/momgate/internal/metrics"
)

// RotationIdle is the rotation phase reported when no rotation runs.
const RotationIdle = "idle"

// metricHooks are the metric sources owned by subsystems that come later
// than the collector: the rotation engine and legacy mode set them (in New,
// before Run) and the collector reads them at scrape time, so neither
// touches the collector. A nil hook reports the default.
type metricHooks struct {
	// rotationPhase returns the current rotation phase; default RotationIdle.
	rotationPhase func() string
	// rotationPhases lists every phase, so that each is exported (0 or 1)
	// and a dashboard sees the phase change; default {RotationIdle}.
	rotationPhases []string
	// nodesByProtocol counts enrolled nodes by protocol version ("v1",
	// "v2"); default: each enrolled node's protocol seen at its last
	// handshake, "v2" when none was seen yet.
	nodesByProtocol func() map[string]int
	// legacy returns the CLUSTERADDR list pushes sent and their bytes;
	// default 0, 0.
	legacy func() (pushes, bytes uint64)
}

// connGauge counts the control connections open at the server, from accept
// to close, authenticated or not.
type connGauge struct{ control atomic.Int64 }

// collectors returns the server's metric collectors.
func (s *Server) collectors() []prometheus.Collector {
	return append(append(append(s.base.Collectors(s.ring.Load), s.sessions.Collectors()...), s.cfg.Collectors...),
		metrics.NewGaugeFunc("rotation_phase", "Key rotation phase: 1 for the current phase, 0 for the others.", "phase",
			func() map[string]float64 {
				phase, all := RotationIdle, s.hooks.rotationPhases
				if s.hooks.rotationPhase != nil {
					phase = s.hooks.rotationPhase()
				}
				if len(all) == 0 {
					all = []string{RotationIdle}
				}
				return metrics.Enum(phase, all)
			}),
		metrics.NewGaugeFunc("nodes_by_protocol", "Enrolled nodes by the protocol version they speak (v1 legacy list, v2 PING).", "protocol",
			func() map[string]float64 {
				var counts map[string]int
				if s.hooks.nodesByProtocol != nil {
					counts = s.hooks.nodesByProtocol()
				} else {
					counts = s.protocolCounts()
				}
				out := map[string]float64{"v2": 0}
				for p, n := range counts {
					out[p] = float64(n)
				}
				return out
			}),
		metrics.NewGaugeFunc("nodes", "Registered nodes by state: enrolling (token issued), down, up (control connection authenticated), deleting (denied by a delete node that did not complete: run it again).", "state",
			s.nodeStateCounts),
		metrics.NewGaugeFunc("enrolled_nodes", "Nodes that have enrolled (hold an identity key).", "",
			func() map[string]float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				n := 0
				for _, nd := range s.reg.byName {
					if nd.enrolled() {
						n++
					}
				}
				return metrics.One(float64(n))
			}),
		metrics.NewCounterFunc("legacy_pushes_total", "Legacy CLUSTERADDR address-list pushes sent to MOMs.", "",
			func() map[string]float64 { p, _ := s.legacyCounts(); return metrics.One(float64(p)) }),
		metrics.NewCounterFunc("legacy_push_bytes_total", "Bytes of legacy CLUSTERADDR address-list pushes sent to MOMs.", "",
			func() map[string]float64 { _, b := s.legacyCounts(); return metrics.One(float64(b)) }),
		metrics.NewGaugeFunc("open_connections", "Connections open now, by channel (control: MOM connections to the server, from accept to close).", "channel",
			func() map[string]float64 { return map[string]float64{"control": float64(s.gauge.control.Load())} }),
		metrics.NewGaugeFunc("sessions", "Authenticated MOM control sessions.", "",
			func() map[string]float64 {
				s.mu.Lock()
				defer s.mu.Unlock()
				return metrics.One(float64(len(s.conns)))
			}),
		metrics.NewGaugeFunc("mode", "The server's protocol mode (legacy, compat, ping): 1 for the current one.", "mode",
			func() map[string]float64 {
				s.mu.Lock()
				mode := s.reg.attrs.Mode
				s.mu.Unlock()
				return metrics.Enum(mode, []string{"legacy", "compat", "ping"})
			}),
	)
}

// nodeStateCounts is the nodes gauge: the registered nodes by state, as
// list node shows them.
func (s *Server) nodeStateCounts() map[string]float64 {
	out := map[string]float64{"enrolling": 0, "down": 0, "up": 0, "deleting": 0}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.reg.byName {
		switch {
		case s.halfDeletedLocked(n):
			out["deleting"]++
		case !n.enrolled():
			out["enrolling"]++
		case n.up:
			out["up"]++
		default:
			out["down"]++
		}
	}
	return out
}

func (s *Server) protocolCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, n := range s.reg.byName {
		if !n.enrolled() {
			continue
		}
		p := n.protocol
		if p == "" {
			p = "v2"
		}
		out[p]++
	}
	return out
}

func (s *Server) legacyCounts() (pushes, bytes uint64) {
	if s.hooks.legacy == nil {
		return 0, 0
	}
	return s.hooks.legacy()
}

// MetricsAddr returns the metrics listener's address once Run is
// listening, or nil when metrics are off.
func (s *Server) MetricsAddr() net.Addr {
	<-s.ready
	return s.base.MetricsAddr()
}
