package mom

import (
	"context"
	"fmt"

	"github.com/momgate/momgate/internal/pbsgate"
	"github.com/momgate/momgate/pbsauth"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// servePBS answers the OpenPBS plugin on an execution host
// (docs/OPENPBS.md): pbs_mom's handshake with pbs_comm and those of
// commands run here. Until the MOM has enrolled it refuses them as
// not_enrolled.
func (m *Mom) servePBS(ctx context.Context) error {
	eng, err := pbsauth.NewEngine(pbsauth.Config{
		Keys: m.ring, Self: m.pbsSelf, Addr: proto.AddrFrom(m.addr.Addr().Unmap()),
		Directory: denyDirectory{m.deny}, Now: m.cfg.Now, Rand: m.cfg.Rand, Freshness: m.cfg.Freshness,
	})
	if err != nil {
		return err
	}
	return pbsgate.Serve(ctx, pbsgate.Config{Path: m.cfg.PBSSocket, Engine: eng, Audit: m.audit, Log: m.log})
}

// pbsSelf is the sealer and node name, or nil before enrollment.
func (m *Mom) pbsSelf() *pbsauth.Self {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sealer == nil || m.enrolled == nil {
		return nil
	}
	return &pbsauth.Self{Sealer: m.sealer, Name: m.enrolled.Name}
}

// denyDirectory admits any node that is not denied: a MOM knows the
// cluster's members only by their keys. The peer is named by its vouch.
type denyDirectory struct{ deny *ping.DenyList }

func (d denyDirectory) Admit(id proto.NodeID, addr proto.Addr, keyID uint32) (string, error) {
	if d.deny.RevokedUnder(id, addr, keyID) {
		return "", fmt.Errorf("%w: the node was deleted", ping.ErrRevoked)
	}
	return "", nil
}

// Generation is the deny list's.
func (d denyDirectory) Generation() uint64 { return d.deny.Generation() }

// Still admits an open connection unless its address is denied: a MOM
// does not know the nodes by name (momgate-server, beside pbs_comm, is the
// daemon that answers pbs_comm's checks).
func (d denyDirectory) Still(name string, addr proto.Addr) error {
	if d.deny.Revoked(proto.NodeID{}, addr) {
		return fmt.Errorf("%w: the address %s of node %s was denied", ping.ErrRevoked, addr, name)
	}
	return nil
}
