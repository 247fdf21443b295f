package migration

import (
	"fmt"
	"sort"
	"strings"

	"github.com/momgate/momgate/proto"
)

// ClusterView is what the migration needs to know of the cluster: the
// server's mode and each node as the server sees it (from `print server`).
type ClusterView struct {
	Mode  proto.Mode
	Nodes []NodeView
}

// NodeView is one node as the server sees it.
type NodeView struct {
	Name     string
	IMAddr   string // ip:port of the node's IM listener
	Up       bool   // the MOM has a control connection to the server
	Protocol string // "v1" or "v2": what its control connection speaks; "" if never seen
	Versions uint8  // VersionBit mask the MOM advertised
	Upgraded bool   // marked upgraded (no-downgrade ratchet)
	// NeverEnrolled: created, its token never used, never connected. It
	// has no MOM to restart; the migration leaves it out, and it joins in
	// the server's mode when it enrolls.
	NeverEnrolled bool
	// NoKey: the server holds no identity key for the node: it never
	// enrolled, though a legacy MOM may be connected without enrolling.
	NoKey bool
}

// Want is a condition on nodes that the migration waits for.
type Want string

// Conditions waited for.
const (
	// WantCompat: up, speaking v2 to the server and still v1 (a compat
	// MOM). After the switch to compat every node must get there: a node
	// that stays on v1 has no cluster key (no enrollment) and would be cut
	// off from upgraded nodes.
	WantCompat Want = "compat"
	// WantUpgraded: up, speaking v2 only, marked upgraded.
	WantUpgraded Want = "upgraded"
	// WantLegacy: up, speaking v1 to the server.
	WantLegacy Want = "legacy"
)

// ParseWant parses a Want.
func ParseWant(s string) (Want, error) {
	switch w := Want(s); w {
	case WantCompat, WantUpgraded, WantLegacy:
		return w, nil
	}
	return "", fmt.Errorf("condition %q: want compat, upgraded or legacy", s)
}

func (v *ClusterView) node(name string) *NodeView {
	for i := range v.Nodes {
		if v.Nodes[i].Name == name {
			return &v.Nodes[i]
		}
	}
	return nil
}

// Names lists the nodes' names, sorted.
func (v *ClusterView) Names() []string { return v.names(func(NodeView) bool { return true }) }

// Enrolled lists the names of the enrolled nodes, sorted.
func (v *ClusterView) Enrolled() []string {
	return v.names(func(n NodeView) bool { return !n.NeverEnrolled })
}

// NeverEnrolled lists the names of the nodes that never enrolled, sorted.
func (v *ClusterView) NeverEnrolled() []string {
	return v.names(func(n NodeView) bool { return n.NeverEnrolled })
}

func (v *ClusterView) names(keep func(NodeView) bool) []string {
	out := []string{}
	for _, n := range v.Nodes {
		if keep(n) {
			out = append(out, n.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Unmet lists, one line per node, why the named nodes (every enrolled
// node when names is empty) do not meet w; nil means they all do.
func (v *ClusterView) Unmet(w Want, names []string) []string {
	if len(names) == 0 {
		names = v.Enrolled()
	}
	var out []string
	for _, name := range names {
		n := v.node(name)
		if n == nil {
			out = append(out, name+": no such node at the server")
			continue
		}
		if why := n.unmet(w); why != "" {
			out = append(out, name+": "+why)
		}
	}
	return out
}

func (n *NodeView) unmet(w Want) string {
	if !n.Up {
		return "not connected to the server"
	}
	switch w {
	case WantCompat:
		switch {
		case n.Protocol != "v2" && (n.NoKey || n.NeverEnrolled):
			return fmt.Sprintf("speaks %s to the server, not v2: it never enrolled; start its MOM with --enroll TOKEN", orNone(n.Protocol))
		case n.Protocol != "v2" && n.Versions&proto.VersionBitV2 == 0:
			return fmt.Sprintf("speaks %s to the server, not v2: its MOM offers the legacy protocol only "+
				"(run with --protocol legacy, or an older momgate-mom); restart it with --protocol follow (the default)", orNone(n.Protocol))
		case n.Protocol != "v2":
			return fmt.Sprintf("speaks %s to the server, not v2 (it offers %s; it reconnects in compat mode shortly)",
				orNone(n.Protocol), orNone(VersionsString(n.Versions)))
		}
		if n.Versions&proto.VersionBitV1 == 0 {
			return "speaks PING only, not compat (v1 and v2)"
		}
	case WantUpgraded:
		if n.Protocol != "v2" || !Upgrades(n.Versions) {
			return fmt.Sprintf("speaks %s (versions %s), not v2 only", orNone(n.Protocol), orNone(VersionsString(n.Versions)))
		}
		if !n.Upgraded {
			return "not marked upgraded yet"
		}
	case WantLegacy:
		if n.Protocol != "v1" {
			return fmt.Sprintf("speaks %s to the server, not v1", orNone(n.Protocol))
		}
	default:
		return fmt.Sprintf("unknown condition %q", w)
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// Preflight checks that goal can start on the cluster: at least one node,
// every node up, and a mode the goal can start from. It returns one line
// per problem; nil means go.
func (v *ClusterView) Preflight(goal Goal) []string {
	var out []string
	if !v.Mode.Valid() {
		out = append(out, fmt.Sprintf("server reports mode %d", v.Mode))
	}
	if len(v.Nodes) == 0 {
		out = append(out, "the server has no nodes")
	}
	var down []string
	for _, n := range v.Nodes {
		if !n.Up && !n.NeverEnrolled {
			down = append(down, n.Name)
		}
	}
	if len(down) > 0 {
		sort.Strings(down)
		out = append(out, fmt.Sprintf("nodes not up: %s (start their MOMs, or delete them, first)", strings.Join(down, ",")))
	}
	return out
}
