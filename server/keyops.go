package server

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// Admin operations of the key rotation: rotate key, export key, activate
// key, list key, delete node and set node Mom= (docs/KEYS.md).

func keyInfo(k *keys.Key) admin.KeyInfo {
	return admin.KeyInfo{ID: k.ID.String(), State: k.State.String(), Created: k.Created}
}

func parseKeyArg(s string) (keys.KeyID, error) {
	id, err := keys.ParseKeyID(strings.ToLower(s))
	if err != nil {
		return 0, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	return id, nil
}

// rotateKey starts a rotation (or queues one behind the current one).
func (s *Server) rotateKey() (*admin.RotationInfo, error) {
	return s.rot.rotate("rotate key")
}

// exportKey writes a cluster key to a new file, mode 0400, for manual
// distribution.
func (s *Server) exportKey(a admin.KeyArgs) (*admin.KeyInfo, error) {
	id, err := parseKeyArg(a.ID)
	if err != nil {
		return nil, err
	}
	if a.File == "" || !filepath.IsAbs(a.File) {
		return nil, admin.Errorf(admin.CodeBadValue, "export key %s: file %q must be an absolute path", id, a.File)
	}
	k := s.ring.Load().Lookup(id)
	if k == nil {
		return nil, admin.Errorf(admin.CodeUnknownKey, "no cluster key %s (list key shows the keys)", id)
	}
	if err := keystore.ExportKeyFile(a.File, k); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, admin.Errorf(admin.CodeBadValue, "export key %s: %s already exists; key files are never overwritten", id, a.File)
		}
		return nil, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	s.log.WithFields(logrus.Fields{"key": id.String(), "file": a.File}).Warn("cluster key exported to a file (mode 0400): move it to the nodes over a secure channel, then delete it")
	info := keyInfo(k)
	return &info, nil
}

// activateKey makes the key being distributed active now (manual
// distribution, or to stop waiting for slow nodes).
func (s *Server) activateKey(a admin.KeyArgs) (*admin.KeyInfo, error) {
	id, err := parseKeyArg(a.ID)
	if err != nil {
		return nil, err
	}
	if s.ring.Load().Lookup(id) == nil {
		return nil, admin.Errorf(admin.CodeUnknownKey, "no cluster key %s (list key shows the keys)", id)
	}
	if err := s.rot.activate(id); err != nil {
		return nil, err
	}
	k := s.ring.Load().Lookup(id)
	if k == nil {
		return nil, admin.Errorf(admin.CodeConflict, "key %s was retired meanwhile", id)
	}
	info := keyInfo(k)
	return &info, nil
}

// listKeys reports the server's keys, the rotation and every node's key
// state.
func (s *Server) listKeys() *admin.KeyList {
	out := &admin.KeyList{Keys: []admin.KeyInfo{}, Nodes: []admin.NodeKeyInfo{}, Rotation: s.rot.info()}
	for _, k := range s.ring.Load().Keys() {
		out.Keys = append(out.Keys, keyInfo(k))
	}
	next, distributing := s.rot.distributing()
	s.mu.Lock()
	nodes := s.reg.sortedNodes()
	ids := make([]proto.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	s.mu.Unlock()
	states := s.rot.nodeStates(ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, n := range nodes {
		ni := admin.NodeKeyInfo{Name: n.rec.Name, Up: n.up}
		if n.keyID != 0 {
			ni.KeyID = n.keyID.String()
		}
		if n.enrolled() {
			ni.KeyState = states[i]
			if distributing && states[i] == admin.KeyAcked {
				ni.AckedKey = next.String()
			}
		}
		out.Nodes = append(out.Nodes, ni)
	}
	return out
}

// annotateKeyStates replaces the key states of list node with the
// rotation's view (the same as list key).
func (s *Server) annotateKeyStates(infos []admin.NodeInfo) {
	s.mu.Lock()
	var ids []proto.NodeID
	var idx []int
	for i, ni := range infos {
		if n := s.reg.byName[ni.Name]; n != nil && n.enrolled() {
			ids = append(ids, n.id)
			idx = append(idx, i)
		}
	}
	s.mu.Unlock()
	for j, st := range s.rot.nodeStates(ids) {
		infos[idx[j]].KeyState = st
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
		if err := s.persistLocked(); err != nil {
			s.reg.add(n)
			for _, t := range removedTokens {
				_ = s.reg.tokens.Add(t)
			}
			return nil, false, fmt.Errorf("persist: %w", err)
		}
		info = n.info(s.activeKeyID())
		s.membershipChangedLocked()
		// Deny at once: the node is refused by the server and by every MOM.
		s.denyLocked(n.id, proto.AddrFrom(n.addr))
		s.pushDenyLocked([]proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}}, n.id)
		s.verifier.Guard.Forget(n.id)
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

// pushDenyLocked queues a Deny on every connected MOM's ordered push queue and
// closes the connection of the node it names (closeNode). The caller holds s.mu.
func (s *Server) pushDenyLocked(entries []proto.NodeAddr, closeNode proto.NodeID) {
	frame := proto.Marshal(&proto.Deny{Entries: entries})
	for id, c := range s.conns {
		if id == closeNode {
			c.conn.Close()
			continue
		}
		s.enqueueLocked(c, pushItem{pushDeny, frame})
	}
}

// readdressedLocked denies a node's old address everywhere after set node
// Mom=, lifts a deny of its new one, and closes its connection (from the
// old address). The caller holds s.mu.
func (s *Server) readdressedLocked(n *node, oldAddr netip.Addr) {
	s.denyLocked(proto.NodeID{}, proto.AddrFrom(oldAddr))
	s.liftDenyLocked(n.addr)
	s.pushDenyLocked([]proto.NodeAddr{{Addr: proto.AddrFrom(oldAddr)}}, n.id)
}
