// Package momcli is the admin client side of momgate-mom: peers, status,
// ping, job and key, each through the running MOM's admin socket, printed
// as a table or as JSON; key import and key activate also work on the
// state directory of a MOM that is not running.
package momcli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// call runs one admin operation on the MOM whose state dir is dir.
func call(ctx context.Context, dir, op string, args, out any) error {
	c, err := admin.Dial(ctx, admin.SocketPath(dir), admin.WithDaemon("momgate-mom"))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, op, args, out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintPeers prints the admitted-peers table of the MOM at dir.
func PrintPeers(ctx context.Context, dir string, w io.Writer, asJSON bool) error {
	var peers []admin.AdmittedPeer
	if err := call(ctx, dir, admin.OpPeers, nil, &peers); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, peers)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tNAME\tNODE ID\tKEY\tDIR\tADMISSIONS\tSESSIONS\tPROTECTION\tKEY_AGE\tFIRST\tLAST")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Addr, dash(p.Name), dash(p.NodeID), dash(p.KeyID), p.Direction, p.Count,
			p.Sessions, dash(p.Session), dash(p.KeyAge), p.First.Format(time.RFC3339), p.Last.Format(time.RFC3339))
	}
	return tw.Flush()
}

// PrintStatus prints the status of the MOM at dir.
func PrintStatus(ctx context.Context, dir string, w io.Writer, asJSON bool) error {
	var st admin.MomStatus
	if err := call(ctx, dir, admin.OpStatus, nil, &st); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, st)
	}
	conn := "connected"
	if !st.Connected {
		conn = "not connected"
		if st.ServerError != "" {
			conn += " (" + st.ServerError + ")"
		}
	}
	fmt.Fprintf(w, "Mom %s\n    node_id = %s\n    listen = %s\n    server = %s: %s\n", st.Node, st.NodeID, st.Listen, st.Server, conn)
	if len(st.Servers) > 1 {
		r := st.ServerRedirects
		fmt.Fprintf(w, "    servers = %s (%d switches; redirects: %d followed, %d without a leader, %d outside the list)\n",
			strings.Join(st.Servers, ","), st.ServerSwitches, r["followed"], r["no_leader"], r["outside_list"])
	}
	for _, k := range st.Keys {
		fmt.Fprintf(w, "    key %s = %s\n", k.ID, k.State)
	}
	fmt.Fprintf(w, "    peers = %d\n    admitted in = %d (sisters this MOM admitted)\n    admitted out = %d (sisters that admitted this MOM)\n"+
		"    audit accepted = %d (every channel: in, out, PBS)\n", st.Peers, st.Admitted, st.AdmittedOut, st.Audit.Accepted)
	if lg := st.Legacy; lg != nil {
		fmt.Fprintf(w, "    protocol = %s (setting %s, server mode %s, control %s)\n", lg.Protocol, lg.Setting, dash(lg.ServerMode), dash(lg.Control))
		fmt.Fprintf(w, "    address list = %d addresses in %d runs (%d pushes received)\n", lg.ListAddrs, lg.ListRuns, lg.Lists)
		upgraded := "upgraded nodes = %d (their legacy admission refused)\n"
		if lg.Protocol == "ping" {
			// A PING-only MOM refuses every legacy admission: the server
			// sends the upgraded set only to MOMs that admit by list.
			upgraded = "upgraded nodes = %d (not needed: this MOM refuses every legacy admission)\n"
		}
		fmt.Fprintf(w, "    "+upgraded+"    admitted by list = %d\n", lg.Upgraded, lg.V1Admitted)
	}
	if ss := st.Sessions; ss != nil {
		fmt.Fprintf(w, "    im_security = %s\n    server speaks sealed sessions = %t\n", ss.IMSecurity, ss.ServerSealed)
		fmt.Fprintf(w, "    control session = %s (key age %s, %d rekeys)\n    IM connections open = %d\n    sealed-session marks = %d\n",
			dash(ss.Control), dash(ss.ControlAge), ss.Rekeys, ss.IMOpen, ss.Marks)
	}
	reasons := make([]string, 0, len(st.Audit.Rejected))
	for r := range st.Audit.Rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "    rejected %s = %d\n", r, st.Audit.Rejected[r])
	}
	return nil
}

// PrintPing asks the MOM at dir to run a PING swap with the sister at addr
// and prints the outcome. A refused swap is an error (non-zero exit).
func PrintPing(ctx context.Context, dir, addr string, w io.Writer, asJSON bool) error {
	var res admin.PingResult
	if err := call(ctx, dir, admin.OpPing, admin.PingArgs{Addr: addr}, &res); err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(w, res); err != nil {
			return err
		}
	} else if res.Admitted {
		fmt.Fprintf(w, "%s admitted: node %s (%s), key %s, round trip %.3f ms\n", res.Addr, dash(res.Name), res.NodeID, res.KeyID, res.RTTMilli)
	} else {
		fmt.Fprintf(w, "%s NOT admitted: %s: %s\n", res.Addr, res.Reason, res.Error)
	}
	if !res.Admitted {
		return fmt.Errorf("ping %s: %s", addr, res.Reason)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
