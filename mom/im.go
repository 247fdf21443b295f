package mom

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// maxIMFrame caps frames on an admitted IM connection.
const maxIMFrame = 64 << 10

// serveIM accepts IM connections until ctx ends, then waits for them.
func (m *Mom) serveIM(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range open {
			c.Close()
		}
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			m.log.WithError(err).Warn("IM accept")
			continue
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		m.gauge.im.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer m.gauge.im.Add(-1)
			m.serveIMLimited(c)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// serveIMConn admits a sister's IM connection, calling release once the
// decision is made, then serves its requests.
func (m *Mom) serveIMConn(c net.Conn, release connlimit.Release) {
	defer c.Close()
	adm, ok := m.admit(c, release)
	if !ok {
		return
	}
	m.serveAdmitted(c, adm.Version, adm.Node, adm.Sender, adm.First)
}

// PingResult is the outcome of an outbound swap with a sister.
type PingResult struct {
	Addr     string           `json:"addr"`
	Admitted bool             `json:"admitted"`
	Reason   reasons.Reason   `json:"reason,omitempty"`
	Error    string           `json:"error,omitempty"`
	Code     proto.RejectCode `json:"code,omitempty"` // the peer's Reject code, if it refused
	NodeID   string           `json:"node_id,omitempty"`
	KeyID    string           `json:"key_id,omitempty"`
	RTTMilli float64          `json:"rtt_ms"`
}

// PingSister opens an IM connection to addr and runs the swap; on success
// the connection is returned open for IM traffic (the caller closes it).
func (m *Mom) PingSister(ctx context.Context, addr string) (*PingResult, net.Conn) {
	out := &PingResult{Addr: addr}
	sealer := m.currentSealer()
	if sealer == nil {
		out.Reason, out.Error = reasons.NotEnrolled, "this MOM has not enrolled yet"
		return out, nil
	}
	start := time.Now()
	c, err := m.dial(ctx, addr)
	if err != nil {
		out.Reason, out.Error = reasons.Connect, err.Error()
		return out, nil
	}
	var res ping.Result
	err = daemon.InitiateSwap(c, sealer, m.verifier, time.Now().Add(m.cfg.HandshakeTimeout), &res)
	out.RTTMilli = float64(time.Since(start).Microseconds()) / 1000
	entry := audit.Entry{Channel: audit.ChannelIM, Peer: daemon.PeerAddrPort(c)}
	if res.KeyID != 0 {
		out.KeyID = keys.KeyID(res.KeyID).String()
	}
	if err != nil {
		c.Close()
		out.Error = err.Error()
		var rj *handshake.RejectError
		if errors.As(err, &rj) {
			out.Reason, out.Code = reasons.RefusedByPeer, rj.Code
		} else {
			out.Reason = ping.Reason(err)
		}
		entry.Outcome, entry.Reason, entry.Detail = audit.Rejected, out.Reason, "outbound: "+err.Error()
		m.audit.Record(m.stamp(entry))
		return out, nil
	}
	out.Admitted = true
	out.NodeID = uuid.UUID(res.Node).String()
	entry.Outcome, entry.Node, entry.KeyID = audit.Accepted, out.NodeID, out.KeyID
	m.audit.Record(m.stamp(entry))
	m.peers.admit(res.Sender, res.Node, out.KeyID, "out", m.cfg.Now())
	return out, c
}

// applyDeny revokes nodes at once and persists the list.
func (m *Mom) applyDeny(entries []proto.NodeAddr) error {
	// An address is denied under the keys held now: the only ones the
	// deleted node can have. See ping.DenyList.
	var held []uint32
	for _, k := range m.ring.Load().Keys() {
		held = append(held, uint32(k.ID))
	}
	for _, e := range entries {
		if e.Node == (proto.NodeID{}) {
			// An address alone: the old address of a readdressed node
			// (set node Mom=), refused under every key until the server
			// gives it to a node again (DenyLift, or the
			// DenySet after a reconnect, lifts it then).
			m.deny.Deny(e.Node, e.Addr)
		} else {
			m.deny.DenyUnder(e.Node, e.Addr, held)
		}
		m.verifier.Guard.Forget(e.Node)
		m.peers.forget(e.Node, e.Addr)
		m.log.WithFields(logrus.Fields{"node_id": uuid.UUID(e.Node).String(), "addr": e.Addr.String()}).Warn("node denied by server")
	}
	return m.saveDeny()
}

func (m *Mom) saveDeny() error {
	d := denied{Format: 1, Entries: []denyEntry{}}
	for _, n := range m.deny.Nodes() {
		d.Entries = append(d.Entries, denyEntry{Node: uuid.UUID(n).String()})
	}
	for _, a := range m.deny.Addrs() {
		e := denyEntry{Addr: a.String()}
		ids, _ := m.deny.AddrKeys(a)
		for _, id := range ids {
			e.Keys = append(e.Keys, keys.KeyID(id).String())
		}
		d.Entries = append(d.Entries, e)
	}
	if err := store.SaveJSON(filepath.Join(m.cfg.StateDir, denyFile), d, 0o600); err != nil {
		return fmt.Errorf("persist deny list: %w", err)
	}
	return nil
}

func parseDenyEntry(e denyEntry) (proto.NodeID, proto.Addr, []uint32, error) {
	var n proto.NodeID
	var a proto.Addr
	var ids []uint32
	for _, k := range e.Keys {
		id, err := keys.ParseKeyID(k)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry key %q: %w", k, err)
		}
		ids = append(ids, uint32(id))
	}
	if e.Node != "" {
		u, err := uuid.Parse(e.Node)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry node %q: %w", e.Node, err)
		}
		n = proto.NodeID(u)
	}
	if e.Addr != "" {
		p, err := proto.ParseAddr(e.Addr)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry addr %q: %w", e.Addr, err)
		}
		a = p
	}
	return n, a, ids, nil
}
