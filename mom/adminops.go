package mom

import (
	"context"
	"encoding/json"
	"net/netip"

	"github.com/momgate/momgate/internal/admin"
)

// handleAdmin dispatches one request of the MOM's admin socket (the
// operations and their types are in internal/admin/mom.go).
func (m *Mom) handleAdmin(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	switch op {
	case admin.OpPeers:
		return m.withSessions(m.peers.list()), nil
	case admin.OpStatus:
		return m.Status(), nil
	case admin.OpPing:
		var a admin.PingArgs
		if err := unmarshalArgs(raw, &a); err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddrPort(a.Addr); err != nil {
			return nil, admin.Errorf(admin.CodeBadValue, "sister address %q: want IP:PORT", a.Addr)
		}
		res, l := m.PingSister(ctx, a.Addr)
		if l != nil {
			m.dropIMLink(l)
		}
		return res, nil
	case admin.OpKeyImport:
		var a admin.KeyFileArgs
		if err := unmarshalArgs(raw, &a); err != nil {
			return nil, err
		}
		return m.importKey(a)
	case admin.OpKeyActivate:
		var a admin.KeyIDArgs
		if err := unmarshalArgs(raw, &a); err != nil {
			return nil, err
		}
		return m.activateKey(a)
	case admin.OpJobStart:
		var a admin.JobStartArgs
		if err := unmarshalArgs(raw, &a); err != nil {
			return nil, err
		}
		return m.startJob(ctx, a)
	case admin.OpJobStop:
		var a admin.JobArgs
		if err := unmarshalArgs(raw, &a); err != nil {
			return nil, err
		}
		return m.stopJob(a.Name)
	case admin.OpJobList:
		return m.jobs.list(), nil
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
}

// unmarshalArgs decodes a request's arguments; bad ones are the caller's
// error (admin.CodeBadRequest).
func unmarshalArgs(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
	}
	return nil
}

// Status reports the MOM's identity, connection, keys and counters.
func (m *Mom) Status() *admin.MomStatus {
	sv := m.srv.view()
	m.mu.Lock()
	st := &admin.MomStatus{Listen: m.addr.String(), Server: sv.Current, Connected: m.connected, ServerError: m.serverErr,
		Servers: append([]string(nil), m.srv.list...), ServerSwitches: sv.Switches, ServerRedirects: sv.Redirects}
	if m.enrolled != nil {
		st.Node, st.NodeID = m.enrolled.Name, m.enrolled.NodeID
	}
	m.mu.Unlock()
	st.Keys = admin.KeyInfos(m.ring.Load())
	st.Peers = m.peers.len()
	st.Admitted, st.AdmittedOut = m.admitted.Load(), m.admittedOut.Load()
	st.Audit = m.audit.Counters()
	st.Legacy = m.legacyStatus()
	st.Sessions = m.sessionsStatus()
	return st
}
