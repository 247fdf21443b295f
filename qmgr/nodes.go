package qmgr

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// NodeFilter selects the nodes of the one-line view; every filter set
// must hold (none set: every node).
type NodeFilter struct {
	Down       bool // not connected: down, or never enrolled (pbsnodes -l)
	NeedsSync  bool // key state "needs sync": missed a rotation step
	Upgraded   bool // marked upgraded: legacy admission refused
	PendingKey bool // key state "pending": a new key sent, no answer yet
}

// Match reports whether n passes every filter set.
func (f NodeFilter) Match(n admin.NodeInfo) bool {
	return (!f.Down || n.State != admin.NodeUp) &&
		(!f.NeedsSync || n.KeyState == admin.KeyNeedsSync) &&
		(!f.Upgraded || n.Upgraded) &&
		(!f.PendingKey || n.KeyState == admin.KeyPending)
}

// NodesConfig is what `momgate-qmgr nodes` selects.
type NodesConfig struct {
	Config              // server, JSON, Out
	Filter   NodeFilter // which nodes
	NoHeader bool       // leave out the header line
}

// RunNodes prints one line per node (name, address, the host name Mom=
// gave, state, protocol, upgraded, key state, last seen), as pbsnodes -a / -l do for PBS, or with JSON the
// nodes' array. It asks the server once, whatever the number of nodes.
func RunNodes(ctx context.Context, cfg NodesConfig) error {
	path, err := cfg.SocketPath()
	if err != nil {
		return err
	}
	lc := &lazyClient{path: path}
	defer lc.Close()
	var nodes []admin.NodeInfo
	if err := lc.Call(ctx, admin.OpListNode, admin.ListNodeArgs{}, &nodes); err != nil {
		return fmt.Errorf("qmgr: nodes: %w", err)
	}
	kept := nodes[:0]
	for _, n := range nodes {
		if cfg.Filter.Match(n) {
			kept = append(kept, n)
		}
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	bw := bufio.NewWriter(out)
	if cfg.JSON {
		b, err := json.MarshalIndent(kept, "", "  ")
		if err != nil {
			return fmt.Errorf("qmgr: nodes: encode: %w", err)
		}
		bw.Write(append(b, '\n'))
	} else {
		WriteNodeLines(bw, kept, !cfg.NoHeader)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("qmgr: write output: %w", err)
	}
	return nil
}

// WriteNodeLines writes one aligned line per node.
func WriteNodeLines(w io.Writer, nodes []admin.NodeInfo, header bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "NAME\tADDRESS\tHOST\tSTATE\tPROTOCOL\tUPGRADED\tKEY_STATE\tSESSION\tKEY_AGE\tLAST_SEEN")
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, n := range nodes {
		seen := "never"
		if n.LastSeen != nil {
			seen = n.LastSeen.UTC().Format(time.RFC3339)
		}
		// One word per column, so that awk and cut can read the lines.
		key := strings.ReplaceAll(dash(n.KeyState), " ", "_")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, nodeAddress(n), dash(n.Host), dash(n.State), dash(n.Protocol),
			boolText(n.Upgraded), key, dash(n.Session), dash(n.SessionKeyAge), seen)
	}
	tw.Flush()
}

// nodeAddress is ADDR:PORT ([ADDR]:PORT for IPv6), or ADDR without a port.
func nodeAddress(n admin.NodeInfo) string {
	a, err := netip.ParseAddr(n.Mom)
	switch {
	case err != nil:
		return n.Mom
	case n.Port == 0:
		return a.String()
	}
	return netip.AddrPortFrom(a, uint16(n.Port)).String()
}
