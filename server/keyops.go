package server

import (
	"errors"
	"fmt"
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
// key and list key (docs/KEYS.md). delete node and set node Mom=, which
// rotate too, are in nodeops.go.

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
	info := admin.KeyInfoOf(k)
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
	cut := s.withoutKey(id)
	if len(cut) > 0 && !a.Force {
		return nil, admin.Errorf(admin.CodeConflict,
			"activate key %s: %d node(s) do not hold it yet and would be refused by their sisters and the server at once: %s; "+
				"import the key file on them (momgate-mom key import, docs/KEYS.md), or `activate key %s force` to cut them off",
			id, len(cut), strings.Join(cut, ", "), id)
	}
	if err := s.rot.activate(id); err != nil {
		return nil, err
	}
	k := s.ring.Load().Lookup(id)
	if k == nil {
		return nil, admin.Errorf(admin.CodeConflict, "key %s was retired meanwhile", id)
	}
	info := admin.KeyInfoOf(k)
	if len(cut) > 0 {
		info.CutOff = cut
		s.log.WithFields(logrus.Fields{"key": id.String(), "cut_off": strings.Join(cut, ",")}).Warn("key activated by force: nodes that do not hold it are cut off until they import it")
	}
	return &info, nil
}

// withoutKey names the enrolled nodes that would be cut off if key id
// were activated now: in manual distribution, while id is being
// distributed, every node that has not acknowledged it (pending or
// needs sync; docs/KEYS.md). In automatic distribution nobody is: the
// server sends the key to every node that lacks it.
func (s *Server) withoutKey(id keys.KeyID) []string {
	next, manual := s.rot.distributingManually()
	if !manual || next != id {
		return nil
	}
	s.mu.Lock()
	var names []string
	var ids []proto.NodeID
	for _, n := range s.reg.sortedNodes() {
		if n.enrolled() {
			names, ids = append(names, n.rec.Name), append(ids, n.id)
		}
	}
	s.mu.Unlock()
	var cut []string
	for i, st := range s.rot.nodeStates(ids) {
		if st != admin.KeyAcked {
			cut = append(cut, fmt.Sprintf("%s (%s)", names[i], st))
		}
	}
	return cut
}

// listKeys reports the server's keys, the rotation and every node's key
// state.
func (s *Server) listKeys() *admin.KeyList {
	out := &admin.KeyList{Keys: admin.KeyInfos(s.ring.Load()), Nodes: []admin.NodeKeyInfo{}, Rotation: s.rot.info()}
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
