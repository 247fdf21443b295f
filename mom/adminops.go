package mom

import (
	"context"
	"encoding/json"
	"net/netip"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
)

// Admin operations of the MOM's socket.
const (
	OpPeers  = "peers"
	OpStatus = "status"
	OpPing   = "ping"
)

// PingArgs are the arguments of OpPing.
type PingArgs struct {
	Addr string `json:"addr"` // sister IM address ip:port
}

// Status is the MOM's status report.
type Status struct {
	Node        string          `json:"node"`
	NodeID      string          `json:"node_id"`
	Listen      string          `json:"listen"`
	Server      string          `json:"server"`
	Connected   bool            `json:"connected"`
	ServerError string          `json:"server_error,omitempty"`
	Keys        []admin.KeyInfo `json:"keys"`
	Peers       int             `json:"peers"`
	Admitted    uint64          `json:"admitted"`
	Audit       audit.Snapshot  `json:"audit"`
	Legacy      *LegacyStatus   `json:"legacy"`
}

func (m *Mom) handleAdmin(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	switch op {
	case OpPeers:
		return m.peers.list(), nil
	case OpStatus:
		return m.Status(), nil
	case OpPing:
		var a PingArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
		}
		if _, err := netip.ParseAddrPort(a.Addr); err != nil {
			return nil, admin.Errorf(admin.CodeBadValue, "sister address %q: want IP:PORT", a.Addr)
		}
		res, c := m.PingSister(ctx, a.Addr)
		if c != nil {
			c.Close()
		}
		return res, nil
	case OpKeyImport, OpKeyActivate:
		return m.handleKeyAdmin(op, raw)
	}
	if res, handled, err := m.jobAdmin(op, raw); handled {
		return res, err
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
}

// Status reports the MOM's identity, connection, keys and counters.
func (m *Mom) Status() *Status {
	m.mu.Lock()
	st := &Status{Listen: m.addr.String(), Server: m.cfg.Server, Connected: m.connected, ServerError: m.serverErr}
	if m.enrolled != nil {
		st.Node, st.NodeID = m.enrolled.Name, m.enrolled.NodeID
	}
	m.mu.Unlock()
	st.Keys = []admin.KeyInfo{}
	for _, k := range m.ring.Load().Keys() {
		st.Keys = append(st.Keys, admin.KeyInfo{ID: k.ID.String(), State: k.State.String(), Created: k.Created})
	}
	st.Peers = len(m.peers.list())
	st.Admitted = m.admitted.Load()
	st.Audit = m.audit.Counters()
	st.Legacy = m.legacyStatus()
	return st
}
