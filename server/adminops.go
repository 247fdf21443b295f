package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// DefaultMomPort is the IM port a node gets when create node names none.
const DefaultMomPort = 15003

func encodeKey(k [32]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }

func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
	}
	return nil
}

// handleAdmin dispatches one admin request.
func (s *Server) handleAdmin(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	switch op {
	case admin.OpCreateNode:
		var a admin.CreateNodeArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.createNode(a)
	case admin.OpDeleteNode:
		var a admin.NodeArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.deleteNode(a.Name)
	case admin.OpListNode:
		var a admin.ListNodeArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		nodes, err := s.listNodes(a.Name)
		if err == nil {
			s.annotateKeyStates(nodes)
		}
		return nodes, err
	case admin.OpPrintServer:
		return s.printServer(), nil
	case admin.OpSetServer:
		var a admin.SetArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.setServer(a.Attrs)
	case admin.OpListKey:
		return s.listKeys(), nil
	case admin.OpRotateKey:
		return s.rotateKey()
	case admin.OpExportKey, admin.OpActivateKey:
		var a admin.KeyArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		if op == admin.OpExportKey {
			return s.exportKey(a)
		}
		return s.activateKey(a)
	case admin.OpMemStats:
		return s.memStats(), nil
	}
	if res, handled, err := s.legacyAdmin(op, raw); handled {
		return res, err
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
}

func (s *Server) createNode(a admin.CreateNodeArgs) (*admin.CreateNodeResult, error) {
	if !nodeNameRE.MatchString(a.Name) {
		return nil, admin.Errorf(admin.CodeBadValue, "invalid node name %q: use letters, digits, '.', '_', '-' (at most 64)", a.Name)
	}
	addr, err := netip.ParseAddr(a.Mom)
	if err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "Mom=%q is not an IP address", a.Mom)
	}
	addr = addr.Unmap()
	if addr.IsUnspecified() || addr.IsMulticast() {
		return nil, admin.Errorf(admin.CodeBadValue, "Mom=%s cannot be a node address", addr)
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
		rec:  nodeRecord{Name: a.Name, Port: a.Port, Created: now.UTC()}, // ID and Mom from id and addr
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
	s.log.WithFields(logrus.Fields{"node": a.Name, "mom": addr.String()}).Info("node created")
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
		return []admin.NodeInfo{n.info(s.activeKeyID())}, nil
	}
	out := []admin.NodeInfo{}
	for _, n := range s.reg.sortedNodes() {
		out = append(out, n.info(s.activeKeyID()))
	}
	return out, nil
}

// ServerReport is print server's result: the server and its nodes.
type ServerReport struct {
	Server admin.ServerInfo `json:"server"`
	Nodes  []admin.NodeInfo `json:"nodes"`
}

func (s *Server) printServer() *admin.ServerReport {
	nodes, _ := s.listNodes("")
	s.mu.Lock()
	defer s.mu.Unlock()
	info := admin.ServerInfo{
		ID: s.reg.idStr, Fingerprint: s.Fingerprint(), Mode: s.reg.attrs.Mode,
		KeyDistribution: s.reg.attrs.KeyDistribution, Nodes: len(s.reg.byName), Attrs: s.reg.attrs.Map(),
		Legacy: s.legacyStatsLocked(),
	}
	if s.listener != nil {
		info.Listen = s.listener.Addr().String()
	}
	if k := s.ring.Load().Active(); k != nil {
		info.ActiveKey = k.ID.String()
	}
	counters := s.audit.Counters()
	info.Audit = &counters
	return &admin.ServerReport{Server: info, Nodes: nodes}
}

func (s *Server) setServer(set []admin.Attr) (*admin.ServerInfo, error) {
	if len(set) == 0 {
		return nil, admin.Errorf(admin.CodeBadRequest, "set server needs ATTR=VALUE")
	}
	s.mu.Lock()
	next, err := s.reg.attrs.with(set)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	old := s.reg.attrs
	s.reg.attrs = next
	if err := s.persistLocked(); err != nil {
		s.reg.attrs = old
		s.mu.Unlock()
		return nil, fmt.Errorf("persist: %w", err)
	}
	s.mu.Unlock()
	s.log.WithField("attrs", set).Info("server attributes set")
	s.modeChanged(old.Mode, next.Mode)
	return &s.printServer().Server, nil
}

// activeKeyID is the id of the server's active cluster key.
func (s *Server) activeKeyID() keys.KeyID {
	if k := s.ring.Load().Active(); k != nil {
		return k.ID
	}
	return 0
}
