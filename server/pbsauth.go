package server

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/momgate/momgate/internal/pbsgate"
	"github.com/momgate/momgate/pbsauth"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// servePBS answers the OpenPBS plugin on the server host (docs/OPENPBS.md):
// pbs_comm's and pbs_server's handshakes, and those of commands run here,
// with the registry as the directory of nodes. The host's address is the
// control listener's; its name is PBSHostName or the hostname.
func (s *Server) servePBS(ctx context.Context) error {
	ap, err := netip.ParseAddrPort(s.cfg.Listen)
	if err != nil || ap.Addr().IsUnspecified() {
		return fmt.Errorf("--pbs-socket needs --listen to be this host's own IP:PORT (the address PINGs name), not %q", s.cfg.Listen)
	}
	name := s.cfg.PBSHostName
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return fmt.Errorf("pbs socket: host name: %w", err)
		}
	}
	addr := proto.AddrFrom(ap.Addr().Unmap())
	s.mu.Lock()
	freshness := s.reg.attrs.Freshness
	s.mu.Unlock()
	self := &pbsauth.Self{Sealer: s.sealer, Name: name}
	eng, err := pbsauth.NewEngine(pbsauth.Config{
		Keys: s.ring, Self: func() *pbsauth.Self { return self }, Addr: addr,
		Directory: registryDirectory{s: s, self: name, addr: addr},
		Now:       s.cfg.Now, Rand: s.cfg.Rand, Freshness: time.Duration(freshness),
		ServiceUsers: s.cfg.PBSServiceUsers,
	})
	if err != nil {
		return err
	}
	return pbsgate.Serve(ctx, pbsgate.Config{Path: s.cfg.PBSSocket, Engine: eng, Audit: s.audit, Log: s.log})
}

// registryDirectory admits a node of the registry from the address it was
// created with, unless it is denied; and the server host itself.
type registryDirectory struct {
	s    *Server
	self string     // the server host's name
	addr proto.Addr // and address
}

func (d registryDirectory) Admit(id proto.NodeID, addr proto.Addr, keyID uint32) (string, error) {
	s := d.s
	if id == s.reg.id {
		if addr != d.addr {
			return "", fmt.Errorf("%w: the server's id from %s, the server is %s", ping.ErrAddrMismatch, addr, d.addr)
		}
		return d.self, nil
	}
	if s.deny.RevokedUnder(id, addr, keyID) {
		return "", fmt.Errorf("%w: the node was deleted", ping.ErrRevoked)
	}
	s.mu.Lock()
	n := s.reg.byID[id]
	var name string
	var at netip.Addr
	if n != nil {
		name, at = n.rec.Name, n.addr
	}
	s.mu.Unlock()
	if n == nil {
		return "", pbsauth.ErrUnknownNode
	}
	if proto.AddrFrom(at) != addr {
		return name, fmt.Errorf("%w: node %s is at %s, the handshake came from %s", ping.ErrAddrMismatch, name, at, addr)
	}
	return name, nil
}

// Generation is the deny list's: every deletion, readdress and lift of a
// deny changes it, and those are the changes that end an admission.
func (d registryDirectory) Generation() uint64 { return d.s.deny.Generation() }

// Still admits an open connection of node name from addr if the registry
// has that node at that address now and neither is denied (the Check op:
// pbs_comm closes a connection this refuses).
func (d registryDirectory) Still(name string, addr proto.Addr) error {
	s := d.s
	if name == d.self {
		if addr != d.addr {
			return fmt.Errorf("%w: the server host %s is at %s, the connection is from %s", ping.ErrAddrMismatch, name, d.addr, addr)
		}
		return nil
	}
	s.mu.Lock()
	n := s.reg.byName[name]
	var id proto.NodeID
	var at netip.Addr
	if n != nil {
		id, at = n.id, n.addr
	}
	s.mu.Unlock()
	if n == nil {
		if s.deny.Revoked(proto.NodeID{}, addr) {
			return fmt.Errorf("%w: node %s was deleted (it is no longer in the registry, and %s is denied)", ping.ErrRevoked, name, addr)
		}
		return fmt.Errorf("%w: node %s is no longer in the registry", pbsauth.ErrUnknownNode, name)
	}
	if proto.AddrFrom(at) != addr {
		return fmt.Errorf("%w: node %s is at %s now, the connection is from %s", ping.ErrAddrMismatch, name, at, addr)
	}
	if s.deny.Revoked(id, addr) {
		return fmt.Errorf("%w: node %s or its address %s was denied", ping.ErrRevoked, name, addr)
	}
	return nil
}
