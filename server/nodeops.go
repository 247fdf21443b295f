package server

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// Node operations of the admin socket: create node, list node, delete
// node and set node (readdress, rollback of the no-downgrade mark).

// DefaultMomPort is the IM port a node gets when create node names none.
const DefaultMomPort = 15003

func (s *Server) createNode(ctx context.Context, a admin.CreateNodeArgs) (*admin.CreateNodeResult, error) {
	if !nodeNameRE.MatchString(a.Name) {
		return nil, admin.Errorf(admin.CodeBadValue, "invalid node name %q: use letters, digits, '.', '_', '-' (at most 64)", a.Name)
	}
	addr, host, err := s.momAddr(ctx, a.Mom)
	if err != nil {
		return nil, err
	}
	if a.Port == 0 {
		a.Port = DefaultMomPort
	}
	if a.Port < 1 || a.Port > 65535 {
		return nil, admin.Errorf(admin.CodeBadValue, "Port=%d out of range 1..65535", a.Port)
	}
	id, err := uuid.NewRandomFromReader(s.cfg.Rand)
	if err != nil {
		return nil, fmt.Errorf("node id: %w", err)
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg.byName[a.Name] != nil {
		return nil, admin.Errorf(admin.CodeDuplicateNode, "node %s already exists", a.Name)
	}
	if other := s.reg.byAddr(addr); other != nil {
		return nil, admin.Errorf(admin.CodeDuplicateNode, "address %s already belongs to node %s", addr, other.rec.Name)
	}
	token, trec, err := keys.IssueToken(s.cfg.Rand, now, time.Duration(s.reg.attrs.TokenTTL), a.Name, s.ident.Public)
	if err != nil {
		return nil, fmt.Errorf("issue token: %w", err)
	}
	n := &node{
		rec:  nodeRecord{Name: a.Name, Host: host, Port: a.Port, Created: now.UTC()}, // ID and Mom from id and addr
		id:   proto.NodeID(id),
		addr: addr,
	}
	s.reg.add(n)
	if err := s.reg.tokens.Add(trec); err != nil {
		s.reg.remove(n)
		return nil, fmt.Errorf("add token: %w", err)
	}
	if err := s.persistNodesLocked(n, trec.ID); err != nil {
		s.reg.remove(n)
		s.reg.tokens.Revoke(a.Name)
		return nil, fmt.Errorf("persist: %w", err)
	}
	s.liftDenyLocked(addr)
	s.log.WithFields(logrus.Fields{"node": a.Name, "mom": addr.String(), "host": host}).Info("node created")
	s.membershipChangedLocked()
	return &admin.CreateNodeResult{Node: n.info(s.activeKeyID()), Token: token, TokenExpires: trec.Expires}, nil
}

func (s *Server) listNodes(name string) ([]admin.NodeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name != "" {
		n := s.reg.byName[name]
		if n == nil {
			return nil, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", name)
		}
		return []admin.NodeInfo{s.nodeInfoLocked(n)}, nil
	}
	out := []admin.NodeInfo{}
	for _, n := range s.reg.sortedNodes() {
		out = append(out, s.nodeInfoLocked(n))
	}
	return out, nil
}

// nodeInfoLocked is n as list node shows it: with its control session and,
// for a node an incomplete delete left denied (halfDeletedLocked), state
// deleting and a comment naming the command that finishes the delete. The
// caller holds s.mu.
func (s *Server) nodeInfoLocked(n *node) admin.NodeInfo {
	ni := s.withSessionLocked(n.info(s.activeKeyID()), n)
	switch {
	case s.halfDeletedLocked(n):
		ni.State, ni.Denied, ni.Comment = admin.NodeDeleting, true, s.halfDeletedComment(n)
	case s.addrDeniedLocked(n):
		ni.Denied, ni.Comment = true, addrDeniedComment(n)
	}
	return ni
}

// addrDeniedLocked reports whether n's own address is denied: what a set
// node Mom= leaves when the server dies between the old address's deny
// and the registry's move. The node is locked out (every MOM refuses
// PINGs from the address) until set node is run again: to the new
// address, or to this one, which lifts the deny. The caller holds s.mu.
func (s *Server) addrDeniedLocked(n *node) bool {
	return s.deny.Revoked(proto.NodeID{}, proto.AddrFrom(n.addr))
}

// addrDeniedComment is the comment of a node whose own address is denied.
func addrDeniedComment(n *node) string {
	return fmt.Sprintf("its address %s is denied, a set node Mom= did not complete: run \"set node %s Mom=NEWADDR\" again, "+
		"or \"set node %s Mom=%s\" to keep this address", n.addr, n.rec.Name, n.rec.Name, n.addr)
}

// halfDeletedLocked reports whether n is registered and yet denied by its
// id or recorded as deleted: what a delete node leaves when the server
// dies between the deny commit and the registry commit (deleteNode). The
// node is refused by the server and every MOM; delete node again
// completes it. The caller holds s.mu.
func (s *Server) halfDeletedLocked(n *node) bool {
	if _, ok := s.deleted.lookup(n.id); ok {
		return true
	}
	return s.deny.Revoked(n.id, proto.Addr{})
}

// halfDeletedComment is the comment of a half-deleted node n. The caller
// holds s.mu.
func (s *Server) halfDeletedComment(n *node) string {
	at := ""
	if d, ok := s.deleted.lookup(n.id); ok {
		at = " (delete node at " + d.At.Format(time.RFC3339) + ")"
	}
	return fmt.Sprintf("denied, delete incomplete%s: run \"delete node %s\" again", at, n.rec.Name)
}

// warnHalfDeleted logs a warning for each node an incomplete delete node
// left registered and denied, with the command that finishes it: nothing
// else tells the administrator but the failed exit of the delete that
// was cut short.
func (s *Server) warnHalfDeleted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.reg.sortedNodes() {
		switch {
		case s.halfDeletedLocked(n):
			s.log.WithFields(logrus.Fields{"node": n.rec.Name, "id": uuid.UUID(n.id).String()}).Warn(
				"node denied but still registered: a delete node did not complete; run momgate-qmgr -c \"delete node " + n.rec.Name + "\" to finish it")
		case s.addrDeniedLocked(n):
			s.log.WithFields(logrus.Fields{"node": n.rec.Name, "addr": n.addr.String()}).Warn("node locked out: " + addrDeniedComment(n))
		}
	}
}

// deleteNode removes a node: it is denied at once by the server and every
// connected MOM, then a key rotation moves the cluster to a key it never
// sees.
func (s *Server) deleteNode(name string) (*admin.NodeInfo, error) {
	s.mu.Lock()
	exists := s.reg.byName[name] != nil
	s.mu.Unlock()
	if !exists {
		return nil, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", name)
	}
	var info admin.NodeInfo
	err := s.rot.changeAndRotate("delete node "+name, func() ([]proto.NodeID, bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := s.reg.byName[name]
		if n == nil {
			return nil, false, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", name)
		}
		s.reg.remove(n)
		removedTokens := s.reg.tokens.Revoke(name)
		// The deny is on disk before the registry forgets the node: a
		// crash between the two leaves the node registered and denied
		// (fail closed: delete it again), never deleted without its deny
		// entry, which a restart could not tell was lost
		// (docs/SECURITY.md section 7).
		s.deleted.add(n.id, name, s.cfg.Now()) // saved with the deny list
		s.denyLocked(n.id, proto.AddrFrom(n.addr))
		s.cfg.CrashAt("delete-denied") // test-only: the deny on disk, the registry not yet changed
		if err := s.persistRemovedLocked(n, removedTokens); err != nil {
			s.reg.add(n)
			for _, t := range removedTokens {
				_ = s.reg.tokens.Add(t)
			}
			// Fail closed: the deny and the deleted record stay, as a
			// crash here leaves them (state deleting). Taking the deny
			// back would also take back the one an earlier delete cut
			// short left, and the next DenySet would let every MOM admit
			// the node again under the key it still holds.
			s.pushDenyLocked([]proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}}, n.id)
			return nil, false, fmt.Errorf("persist: %w (node %s stays denied, shown as deleting: run delete node %s again)", err, name, name)
		}
		s.cfg.CrashAt("delete-saved") // test-only: the delete committed to the registry
		info = n.info(s.activeKeyID())
		s.membershipChangedLocked()
		// Deny at once: the node is refused by the server and by every MOM.
		s.pushDenyLocked([]proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}}, n.id)
		if n.rec.Sealed {
			s.forgetSealedLocked(n, proto.AddrFrom(n.addr)) // its address may go to a node that does not speak them
		}
		s.base.Verifier.Guard.Forget(n.id)
		if !n.enrolled() {
			// It never held a cluster key: nothing to rotate.
			s.log.WithFields(logrus.Fields{"node": name}).Info("node deleted before it enrolled")
			return nil, false, nil
		}
		s.log.WithFields(logrus.Fields{"node": name}).Info("node deleted and denied; rotating the cluster key")
		return []proto.NodeID{n.id}, true, nil
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// setNode changes node attributes, all or nothing: Mom=ADDR|HOST readdresses the
// node (a membership change: lists are pushed), protocol=legacy or
// upgraded=false roll it back (its no-downgrade mark is cleared).
func (s *Server) setNode(ctx context.Context, a admin.SetArgs) (*admin.NodeInfo, error) {
	if len(a.Attrs) == 0 {
		return nil, admin.Errorf(admin.CodeBadRequest, "set node needs ATTR=VALUE")
	}
	var newAddr netip.Addr
	newHost := ""
	rollback, unseal := false, false
	for _, kv := range a.Attrs {
		v := strings.TrimSpace(kv.Value)
		switch strings.ToLower(kv.Name) {
		case "mom":
			addr, host, err := s.momAddr(ctx, v)
			if err != nil {
				return nil, err
			}
			newAddr, newHost = addr, host
		case "protocol":
			if !strings.EqualFold(v, "legacy") {
				return nil, admin.Errorf(admin.CodeBadValue, "protocol=%q: only legacy can be set (a node becomes PING-only by speaking it)", kv.Value)
			}
			rollback = true
		case "upgraded":
			if !strings.EqualFold(v, "false") {
				return nil, admin.Errorf(admin.CodeBadValue, "upgraded=%q: only false can be set (a node is marked when it speaks PING only)", kv.Value)
			}
			rollback = true
		case "sealed":
			if !strings.EqualFold(v, "false") {
				return nil, admin.Errorf(admin.CodeBadValue, "sealed=%q: only false can be set (a node is marked when it proves it speaks sealed sessions)", kv.Value)
			}
			unseal = true
		default:
			return nil, admin.Errorf(admin.CodeBadValue, "unknown node attribute %q (settable: Mom, protocol=legacy, upgraded=false, sealed=false)", kv.Name)
		}
	}
	var info admin.NodeInfo
	// apply makes the change under s.mu; it reports whether the node was
	// readdressed and holds a cluster key (then the key is rotated).
	apply := func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := s.reg.byName[a.Name]
		if n == nil {
			return false, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", a.Name)
		}
		old, oldAddr := n.rec, n.addr
		readdress := newAddr.IsValid() && newAddr != n.addr
		if readdress {
			if other := s.reg.byAddr(newAddr); other != nil {
				return false, admin.Errorf(admin.CodeDuplicateNode, "address %s already belongs to node %s", newAddr, other.rec.Name)
			}
			s.reg.moveAddr(n, newAddr)
		}
		// Mom= names the node's address again, by name or not.
		rehosted := newAddr.IsValid() && newHost != n.rec.Host
		if rehosted {
			n.rec.Host = newHost
		}
		cleared := rollback && n.rec.Upgraded
		if rollback {
			n.rec.Upgraded = false
		}
		unsealed := unseal && n.rec.Sealed
		if unseal {
			n.rec.Sealed = false
		}
		// The old address's deny is on disk before the registry moves
		// the node, as for delete node: a crash between the two never
		// leaves the old address without its deny.
		preDenied := readdress && n.enrolled()
		if preDenied {
			s.denyAddrLocked(proto.AddrFrom(oldAddr))
			s.cfg.CrashAt("readdress-denied") // test-only: the old address denied, the registry not yet moved
		}
		if newAddr.IsValid() && !readdress && s.addrDeniedLocked(n) {
			// Mom= names the node's own address, which a set node cut
			// short left denied: the administrator keeps it there.
			s.liftDenyLocked(n.addr)
		}
		if readdress || cleared || unsealed || rehosted {
			if err := s.persistNodesLocked(n); err != nil { // only n's record changed
				if readdress {
					s.reg.moveAddr(n, oldAddr)
				}
				n.rec = old
				if preDenied {
					s.undenyLocked(proto.NodeID{}, proto.AddrFrom(oldAddr))
				}
				return false, fmt.Errorf("persist: %w", err)
			}
		}
		if cleared {
			s.log.WithField("node", n.rec.Name).Warn("node rolled back by the administrator: legacy admission of it allowed again")
		}
		if unsealed {
			s.log.WithField("node", n.rec.Name).Warn("node rolled back by the administrator: unsealed sessions with it allowed again")
		}
		if unsealed || (readdress && n.rec.Sealed) {
			s.forgetSealedLocked(n, proto.AddrFrom(oldAddr))
		}
		if readdress && n.rec.Sealed {
			s.pushSealedLocked(proto.UpgradedAdd, []proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}})
		}
		if cleared || (readdress && n.rec.Upgraded) {
			s.pushUpgradedLocked(proto.UpgradedRemove, &node{id: n.id, addr: oldAddr})
		}
		if readdress && n.rec.Upgraded {
			s.pushUpgradedLocked(proto.UpgradedAdd, n)
		}
		if readdress {
			s.log.WithFields(logrus.Fields{"node": n.rec.Name, "from": oldAddr.String(), "to": newAddr.String(), "host": n.rec.Host}).Info("node readdressed")
			s.membershipChangedLocked()
			if n.enrolled() {
				// PINGs naming the old address are refused from now on,
				// here and on every MOM; the node's connection, from the
				// old address, is closed (docs/KEYS.md). A node that
				// never enrolled holds no key: the pushed list is enough.
				s.readdressedLocked(n, oldAddr)
			} else {
				// Its new address is given to a node again all the
				// same: a deny of it is lifted, or the node could
				// never enrol there.
				s.liftDenyLocked(n.addr)
			}
		}
		info = s.nodeInfoLocked(n)
		return readdress && n.enrolled(), nil
	}
	if !newAddr.IsValid() {
		_, err := apply()
		return &info, err
	}
	// A new address: the change and the key rotation that follows it
	// (as HACMP and Sun Cluster prescribe) are one crash-safe step.
	err := s.rot.changeAndRotate(fmt.Sprintf("set node %s Mom=%s", a.Name, newAddr), func() ([]proto.NodeID, bool, error) {
		rotate, err := apply()
		return nil, rotate, err
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
}

// readdressedLocked denies a node's old address everywhere after set node
// Mom=, lifts a deny of its new one, and closes its connection (from the
// old address). The caller holds s.mu.
func (s *Server) readdressedLocked(n *node, oldAddr netip.Addr) {
	s.denyAddrLocked(proto.AddrFrom(oldAddr))
	s.liftDenyLocked(n.addr)
	s.pushDenyLocked([]proto.NodeAddr{{Addr: proto.AddrFrom(oldAddr)}}, n.id)
}
