package mom

import (
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/momgate/momgate/internal/metrics"
)

// RotationIdle is the rotation phase a MOM reports: the rotation runs at
// the server (its rotation_phase metric); a MOM's part shows in its keys
// by state (momgate_keys).
const RotationIdle = "idle"

// connGauge counts IM connections open at this MOM's listener, from
// accept to close, admitted or not.
type connGauge struct{ im atomic.Int64 }

func (t *peerTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

// collectors returns the MOM's metric collectors.
func (m *Mom) collectors() []prometheus.Collector {
	connected := func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.connected
	}
	return append(append(m.base.Collectors(m.ring.Load), m.sstats.Collectors()...),
		metrics.NewGaugeFunc("rotation_phase", "Key rotation phase: 1 for the current phase, 0 for the others.", "phase",
			func() map[string]float64 { return metrics.Enum(RotationIdle, []string{RotationIdle}) }),
		metrics.NewGaugeFunc("enrolled", "1 once this MOM has enrolled with the server.", "",
			func() map[string]float64 { return metrics.One(metrics.Bool(m.currentSealer() != nil)) }),
		metrics.NewGaugeFunc("server_connected", "1 while the control connection to the server is authenticated.", "",
			func() map[string]float64 { return metrics.One(metrics.Bool(connected())) }),
		metrics.NewGaugeFunc("open_connections", "Connections open now, by channel (im: inbound sister connections from accept to close; control: to the server).", "channel",
			func() map[string]float64 {
				return map[string]float64{"im": float64(m.gauge.im.Load()), "control": metrics.Bool(connected())}
			}),
		metrics.NewGaugeFunc("peers", "Sisters in the admitted-peers table.", "",
			func() map[string]float64 { return metrics.One(float64(m.peers.len())) }),
		metrics.NewGaugeFunc("peers_by_protocol", "Admitted sisters by the protocol version they were admitted with (v1 pushed list, v2 PING).", "protocol",
			func() map[string]float64 {
				out := map[string]float64{"v2": 0}
				for p, n := range m.peers.byProtocol() {
					out[p] = float64(n)
				}
				return out
			}),
		metrics.NewGaugeFunc("denied", "Entries (node ids and addresses) on the deny list the server pushed.", "",
			func() map[string]float64 {
				return metrics.One(float64(len(m.deny.Nodes()) + len(m.deny.Addrs())))
			}),
		metrics.NewCounterFunc("legacy_pushes_received_total", "Legacy CLUSTERADDR address-list pushes received from the server.", "",
			func() map[string]float64 { return metrics.One(float64(m.lg.lists.Load())) }),
		metrics.NewCounterFunc("legacy_push_bytes_received_total", "Bytes of legacy CLUSTERADDR address-list pushes received from the server.", "",
			func() map[string]float64 { return metrics.One(float64(m.lg.listBytes.Load())) }),
		m.srv.collector(), // control_server, server_switches_total, server_redirects_total (serverstate.go)
	)
}

// MetricsAddr returns the metrics listener's address once Run is
// listening, or nil when metrics are off.
func (m *Mom) MetricsAddr() net.Addr {
	<-m.ready
	return m.base.MetricsAddr()
}
