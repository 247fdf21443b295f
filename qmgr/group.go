package qmgr

import (
	"bytes"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// writeGroup prints the server group of list server: one line of the
// group as the answering member sees it, then every member with its
// address, role, state and last contact.
func writeGroup(out *bytes.Buffer, g *admin.GroupInfo) {
	leader := g.Leader
	if leader == "" {
		leader = "(none known)"
	}
	fmt.Fprintf(out, "Group: answered by %s, leader %s, term %d, log index %d, applied %d, leader changes %d\n",
		g.Member, leader, g.Term, g.LastIndex, g.Applied, g.LeaderChanges)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    member\taddress\treplication\trole\tstate\tlast contact")
	for _, m := range g.Members {
		last := "-"
		if m.LastContact != nil {
			last = m.LastContact.UTC().Format(time.RFC3339)
		}
		addr := m.Address
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", m.Name, addr, m.Replication, m.Role, m.State, last)
	}
	tw.Flush()
}
