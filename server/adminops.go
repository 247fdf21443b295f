package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
)

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
	case admin.OpBackup:
		return s.backup(raw)
	case admin.OpBackupChunk:
		return s.backups.read(raw)
	case admin.OpCreateServer, admin.OpDeleteServer, admin.OpSetMember:
		// A group member answers these before its server does.
		return nil, admin.Errorf(admin.CodeUnknownOp, "%s works in a server group, and this server is not a member of one: "+
			"run it with --replication-listen to make it a group's first member (docs/HA.md)", op)
	case admin.OpCreateNode:
		var a admin.CreateNodeArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.createNode(ctx, a)
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
	case admin.OpUnsetServer:
		var a admin.UnsetArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.unsetServer(a.Attrs)
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
	case admin.OpSetNode:
		var a admin.SetArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return s.setNode(ctx, a)
	case admin.OpMemStats:
		return s.memStats(), nil
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
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
	if ln := s.listenerIfReady(); ln != nil {
		info.Listen = ln.Addr().String()
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
	s.imSecurityChanged(old, next)
	return &s.printServer().Server, nil
}

// unsetServer puts attributes back to their defaults (DefaultAttrs), all
// or nothing, as set server would set them.
func (s *Server) unsetServer(names []string) (*admin.ServerInfo, error) {
	if len(names) == 0 {
		return nil, admin.Errorf(admin.CodeBadRequest, "unset server needs ATTR")
	}
	defaults := DefaultAttrs().Map()
	set := make([]admin.Attr, 0, len(names))
	for _, n := range names {
		v, ok := defaults[strings.ToLower(n)]
		if !ok {
			return nil, admin.Errorf(admin.CodeBadValue, "unknown server attribute %q (settable: %s)", n, strings.Join(attrNames(), ", "))
		}
		set = append(set, admin.Attr{Name: n, Value: v})
	}
	return s.setServer(set)
}

// activeKeyID is the id of the server's active cluster key.
func (s *Server) activeKeyID() keys.KeyID {
	if k := s.ring.Load().Active(); k != nil {
		return k.ID
	}
	return 0
}
