package qmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// Executor runs one admin operation; *admin.Client satisfies it. out
// receives the result (Session passes a *json.RawMessage).
type Executor interface {
	Call(ctx context.Context, op string, args any, out any) error
}

// Session executes directives against a server and prints the results.
//
// Text output is PBS-like: list node prints "Node NAME" blocks of
// "    attr = value" lines; print server and print node print directives
// that recreate the configuration; create node prints the node, then
// "token: TOKEN" and "token expires: RFC3339"; list key prints a
// "Rotation N" block (once a rotation has happened), then a table of keys
// and a table of nodes; set and delete print nothing on success, as PBS
// qmgr does.
//
// With JSON, the output is the operation's result as indented JSON, with
// the admin package's field names:
//
//	create node            admin.CreateNodeResult (the token is "token")
//	list node, print node  []admin.NodeInfo
//	delete node, set node  []admin.NodeInfo, one per name, after the change
//	list/print server      admin.ServerReport
//	set server             admin.ServerInfo after the change
//	set server NAME        admin.MemberInfo after the change (standby=)
//	unset server           admin.ServerInfo after the change
//	list key               admin.KeyList
//	rotate key             admin.RotationInfo
//	export/activate key    admin.KeyInfo
type Session struct {
	Exec Executor  // required
	Out  io.Writer // results; nil discards them
	Err  io.Writer // diagnostics of RunInteractive
	JSON bool      // print results as JSON
	// History lists the entries the history directive prints; nil
	// outside an interactive session, where history is refused.
	History func() []string
}

// runner executes one kind of directive, writing its output to out.
type runner func(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error

// runners maps "command object" to its runner; see table.go.
var runners = map[string]runner{
	"create node":  runCreateNode,
	"delete node":  runDeleteNode,
	"set node":     runSetNode,
	"list node":    runListNode,
	"print node":   runPrintNode,
	"list server":  runListServer,
	"print server": runPrintServer,
	"set server":   runSetServer,
	"unset server": runUnsetServer,
	"list key":     runListKey,
	"rotate key":   runRotateKey,
	"export key":   runExportKey,
	"activate key": runActivateKey,
}

// Run executes d and prints its result. d is validated again (a
// hand-built Directive gets the same checks as a parsed one). Errors
// begin with "qmgr:" and name the directive. The zero Directive, quit
// and exit do nothing.
func (s *Session) Run(ctx context.Context, d Directive) error {
	out, err := s.execute(ctx, d)
	if err != nil {
		return err
	}
	if s.Out == nil || len(out) == 0 {
		return nil
	}
	if _, err := s.Out.Write(out); err != nil {
		return fmt.Errorf("qmgr: write output: %w", err)
	}
	return nil
}

// execute runs d and returns what Run prints: text, or in JSON mode
// exactly one JSON value (nothing for blank lines, quit and exit).
func (s *Session) execute(ctx context.Context, d Directive) ([]byte, error) {
	if d.Command == "" {
		return nil, nil
	}
	cd, err := Parse(d.String())
	if err != nil {
		return nil, fmt.Errorf("%w (directive: %s)", err, d.String())
	}
	var out bytes.Buffer
	switch cd.Command {
	case "quit", "exit":
		return nil, nil
	case "help", "history":
		text := helpText()
		if len(cd.Names) > 0 {
			text = topicHelp(cd.Names)
		}
		if cd.Command == "history" {
			if s.History == nil {
				return nil, fmt.Errorf("qmgr: history: only at the interactive Qmgr: prompt")
			}
			text = formatHistory(s.History())
		}
		if !s.JSON {
			return []byte(text), nil
		}
		b, _ := json.Marshal(text) // a string always marshals
		return append(b, '\n'), nil
	default:
		run := runners[cd.Command+" "+cd.Object]
		if run == nil {
			return nil, fmt.Errorf("qmgr: %s: not implemented", cd.head())
		}
		if err := run(ctx, s, cd, &out); err != nil {
			return nil, fmt.Errorf("qmgr: %s: %w", cd.head(), err)
		}
	}
	return out.Bytes(), nil
}

// call runs op and returns its raw result ("null" if none).
func (s *Session) call(ctx context.Context, op string, args any) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := s.Exec.Call(ctx, op, args, &raw); err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	return raw, nil
}

// writeJSON writes raw indented, with a final newline.
func writeJSON(out *bytes.Buffer, raw json.RawMessage) error {
	if err := json.Indent(out, raw, "", "  "); err != nil {
		return fmt.Errorf("malformed result from server: %w", err)
	}
	out.WriteByte('\n')
	return nil
}

// joinJSON makes a JSON array of raw values.
func joinJSON(raws []json.RawMessage) json.RawMessage {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	b, _ := json.Marshal(raws) // RawMessages were validated by the decoder
	return b
}

func decode(op string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("malformed %s result from server: %w", op, err)
	}
	return nil
}

func adminAttrs(as []Attr) []admin.Attr {
	out := make([]admin.Attr, len(as))
	for i, a := range as {
		out[i] = admin.Attr{Name: a.Name, Value: a.Value}
	}
	return out
}

func runCreateNode(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	args := admin.CreateNodeArgs{Name: d.Names[0]}
	for _, a := range d.Attrs {
		switch a.Name {
		case "Mom":
			args.Mom = a.Value
		case "Port":
			args.Port, _ = strconv.Atoi(a.Value) // validated by Parse
		}
	}
	raw, err := s.call(ctx, admin.OpCreateNode, args)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	var res admin.CreateNodeResult
	if err := decode(admin.OpCreateNode, raw, &res); err != nil {
		return err
	}
	formatNode(out, res.Node, nil)
	fmt.Fprintf(out, "token: %s\n", res.Token)
	fmt.Fprintf(out, "token expires: %s\n", res.TokenExpires.Format(time.RFC3339))
	return nil
}

// requireNodes checks that every named node exists before a multi-node
// change, so that an unknown name changes nothing.
func (s *Session) requireNodes(ctx context.Context, names []string) error {
	if len(names) < 2 {
		return nil // the operation itself checks
	}
	for _, n := range names {
		if _, err := s.call(ctx, admin.OpListNode, admin.ListNodeArgs{Name: n}); err != nil {
			return fmt.Errorf("%w (nothing changed)", err)
		}
	}
	return nil
}

// perNode runs op for each node in turn; it stops at the first failure,
// saying which nodes were already changed.
func (s *Session) perNode(ctx context.Context, names []string, op string, args func(string) any, out *bytes.Buffer) error {
	if err := s.requireNodes(ctx, names); err != nil {
		return err
	}
	var raws []json.RawMessage
	for i, n := range names {
		raw, err := s.call(ctx, op, args(n))
		if err != nil {
			if i > 0 {
				return fmt.Errorf("%s: %w (already done: %s)", n, err, strings.Join(names[:i], ","))
			}
			return err
		}
		raws = append(raws, raw)
	}
	if s.JSON {
		return writeJSON(out, joinJSON(raws))
	}
	return nil // like PBS qmgr, silent on success
}

func runDeleteNode(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	return s.perNode(ctx, d.Names, admin.OpDeleteNode, func(n string) any { return admin.NodeArgs{Name: n} }, out)
}

func runSetNode(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	attrs := adminAttrs(d.Attrs)
	return s.perNode(ctx, d.Names, admin.OpSetNode, func(n string) any { return admin.SetArgs{Name: n, Attrs: attrs} }, out)
}

// listNodes fetches the named nodes (all when names is empty) as a raw
// JSON array and decoded.
func (s *Session) listNodes(ctx context.Context, names []string) (json.RawMessage, []admin.NodeInfo, error) {
	if len(names) == 0 {
		names = []string{""}
	}
	var raws []json.RawMessage
	for _, n := range names {
		raw, err := s.call(ctx, admin.OpListNode, admin.ListNodeArgs{Name: n})
		if err != nil {
			return nil, nil, err
		}
		var part []json.RawMessage
		if err := decode(admin.OpListNode, raw, &part); err != nil {
			return nil, nil, err
		}
		raws = append(raws, part...)
	}
	all := joinJSON(raws)
	var nodes []admin.NodeInfo
	if err := decode(admin.OpListNode, all, &nodes); err != nil {
		return nil, nil, err
	}
	return all, nodes, nil
}

func runListNode(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	raw, nodes, err := s.listNodes(ctx, d.Names)
	if err != nil {
		return err
	}
	if s.JSON && len(d.Show) == 0 {
		return writeJSON(out, raw)
	}
	if s.JSON {
		b, err := json.Marshal(selectNodeFields(nodes, d.Show))
		if err != nil {
			return fmt.Errorf("encode nodes: %w", err)
		}
		return writeJSON(out, b)
	}
	for _, n := range nodes {
		formatNode(out, n, d.Show)
		out.WriteByte('\n')
	}
	return nil
}

func runPrintNode(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	raw, nodes, err := s.listNodes(ctx, d.Names)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	for _, n := range nodes {
		if n.Comment != "" {
			// A qmgr comment, so the output stays a script.
			out.WriteString("# " + n.Name + ": " + n.Comment + "\n")
		}
		if n.State == admin.NodeDeleting {
			// Commented out too: replaying the script would create again
			// the node a delete node was removing.
			out.WriteString("# " + createNodeLine(n) + "\n")
			continue
		}
		out.WriteString(createNodeLine(n) + "\n")
	}
	return nil
}

// createNodeLine is the directive that creates n: by its host name when
// it was created (or last readdressed) by one, so that replaying it
// resolves the name again.
func createNodeLine(n admin.NodeInfo) string {
	mom := n.Mom
	if n.Host != "" {
		mom = n.Host
	}
	d := Directive{Command: "create", Object: "node", Names: []string{n.Name}, Attrs: []Attr{{Name: "Mom", Op: "=", Value: mom}}}
	if n.Port != 0 {
		d.Attrs = append(d.Attrs, Attr{Name: "Port", Op: "=", Value: strconv.Itoa(n.Port)})
	}
	return d.String()
}

func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// formatNode writes a PBS-style node block, of the attributes in show
// only when show is not empty.
func formatNode(out *bytes.Buffer, n admin.NodeInfo, show []string) {
	fmt.Fprintf(out, "Node %s\n", n.Name)
	for _, a := range nodeAttrs(n) {
		if a.value != "" && (len(show) == 0 || slices.Contains(show, a.name)) {
			fmt.Fprintf(out, "    %s = %s\n", a.name, a.value)
		}
	}
}

// nodeAttr is one line of a node block.
type nodeAttr struct{ name, value string }

// nodeAttrs are n's attributes in the order of nodeShowAttrs; "" for an
// attribute without a value.
func nodeAttrs(n admin.NodeInfo) []nodeAttr {
	port, created, enrolled, seen := "", "", "", ""
	if n.Port != 0 {
		port = strconv.Itoa(n.Port)
	}
	if !n.Created.IsZero() {
		created = n.Created.Format(time.RFC3339)
	}
	if n.Enrolled != nil {
		enrolled = n.Enrolled.Format(time.RFC3339)
	}
	if n.LastSeen != nil {
		seen = n.LastSeen.Format(time.RFC3339)
	}
	mom := n.Mom
	if n.Host != "" {
		mom += " (" + n.Host + ")" // the address the name resolved to, and the name
	}
	return []nodeAttr{
		{"Mom", mom}, {"Port", port}, {"state", n.State}, {"denied", deniedText(n.Denied)}, {"comment", n.Comment}, {"protocol", n.Protocol},
		{"versions", n.Versions}, {"upgraded", boolText(n.Upgraded)}, {"key_id", n.KeyID},
		{"key_state", n.KeyState}, {"fingerprint", n.Fingerprint}, {"id", n.ID},
		{"created", created}, {"enrolled", enrolled}, {"last_seen", seen},
		{"sealed", sealedText(n.Sealed)}, {"session", n.Session}, {"session_key_age", n.SessionKeyAge},
	}
}

// deniedText shows the denied mark only when it is set: only a node an
// incomplete delete node left registered has it.
func deniedText(denied bool) string {
	if denied {
		return boolText(true)
	}
	return ""
}

// sealedText shows the sealed-sessions mark only when it is set (a node
// block omits attributes without a value).
func sealedText(sealed bool) string {
	if sealed {
		return boolText(true)
	}
	return ""
}

// selectNodeFields keeps, of each node's JSON object, its name and the
// fields of the attributes in show (the JSON field is the attribute name
// in lower case).
func selectNodeFields(nodes []admin.NodeInfo, show []string) []map[string]any {
	out := make([]map[string]any, 0, len(nodes))
	for _, n := range nodes {
		b, _ := json.Marshal(n) // NodeInfo always marshals
		var all map[string]any
		_ = json.Unmarshal(b, &all)
		m := map[string]any{"name": n.Name}
		for _, a := range show {
			k := strings.ToLower(a)
			m[k] = all[k]
			if k == "mom" {
				m["host"] = all["host"] // Mom is the address and the name it came from
			}
		}
		out = append(out, m)
	}
	return out
}

func (s *Session) serverReport(ctx context.Context) (json.RawMessage, admin.ServerReport, error) {
	var rep admin.ServerReport
	raw, err := s.call(ctx, admin.OpPrintServer, nil)
	if err != nil {
		return nil, rep, err
	}
	return raw, rep, decode(admin.OpPrintServer, raw, &rep)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func runListServer(ctx context.Context, s *Session, _ Directive, out *bytes.Buffer) error {
	raw, rep, err := s.serverReport(ctx)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	si := rep.Server
	fmt.Fprintf(out, "Server %s\n", si.ID)
	attr := func(name, v string) {
		if v != "" {
			fmt.Fprintf(out, "    %s = %s\n", name, v)
		}
	}
	attr("fingerprint", si.Fingerprint)
	attr("listen", si.Listen)
	attr("active_key", si.ActiveKey)
	attr("nodes", strconv.Itoa(si.Nodes))
	if _, ok := si.Attrs["mode"]; !ok {
		attr("mode", si.Mode)
	}
	if _, ok := si.Attrs["key_distribution"]; !ok {
		attr("key_distribution", si.KeyDistribution)
	}
	for _, k := range sortedKeys(si.Attrs) {
		attr(k, si.Attrs[k])
	}
	if a := si.Audit; a != nil {
		attr("admissions_accepted", strconv.FormatUint(a.Accepted, 10))
		for _, r := range sortedCounts(a.Rejected) {
			attr("admissions_rejected."+r, strconv.FormatUint(a.Rejected[r], 10))
		}
	}
	if lg := si.Legacy; lg != nil {
		n := func(v uint64) string { return strconv.FormatUint(v, 10) }
		attr("legacy_push_messages", n(lg.PushMessages))
		attr("legacy_push_bytes", n(lg.PushBytes))
		attr("legacy_upgrade_messages", n(lg.UpgradeMessages))
		attr("legacy_list", fmt.Sprintf("%d runs, %d bytes, pushed to %d MOMs", lg.ListRuns, lg.ListBytes, lg.ListSessions))
		attr("legacy_sessions", strconv.Itoa(lg.V1Sessions))
		attr("upgraded_nodes", strconv.Itoa(lg.Upgraded))
		attr("legacy_refused", fmt.Sprintf("v1 %d, v2 %d, downgrade %d", lg.V1Refused, lg.V2Refused, lg.Downgrades))
	}
	if si.Group != nil {
		writeGroup(out, si.Group)
	}
	return nil
}

func sortedCounts(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func runPrintServer(ctx context.Context, s *Session, _ Directive, out *bytes.Buffer) error {
	raw, rep, err := s.serverReport(ctx)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	out.WriteString("#\n# Set server attributes.\n#\n")
	for _, k := range sortedKeys(rep.Server.Attrs) {
		fmt.Fprintf(out, "set server %s = %s\n", k, Quote(rep.Server.Attrs[k]))
	}
	if len(rep.Nodes) > 0 {
		out.WriteString("#\n# Create nodes.\n#\n")
		for _, n := range rep.Nodes {
			out.WriteString(createNodeLine(n) + "\n")
		}
	}
	return nil
}

func runSetServer(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	if len(d.Names) > 0 {
		return runSetMember(ctx, s, d, out)
	}
	raw, err := s.call(ctx, admin.OpSetServer, admin.SetArgs{Attrs: adminAttrs(d.Attrs)})
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	return nil
}

func runUnsetServer(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	raw, err := s.call(ctx, admin.OpUnsetServer, admin.UnsetArgs{Attrs: d.Show})
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	return nil
}

func runListKey(ctx context.Context, s *Session, _ Directive, out *bytes.Buffer) error {
	raw, err := s.call(ctx, admin.OpListKey, nil)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	var kl admin.KeyList
	if err := decode(admin.OpListKey, raw, &kl); err != nil {
		return err
	}
	dash := func(v string) string {
		if v == "" {
			return "-"
		}
		return v
	}
	if rot := kl.Rotation; rot.Seq > 0 || rot.Queued > 0 || rot.Error != "" {
		formatRotation(out, rot)
		out.WriteByte('\n')
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tSTATE\tCREATED")
	for _, k := range kl.Keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.ID, k.State, k.Created.Format(time.RFC3339))
	}
	tw.Flush()
	if len(kl.Nodes) > 0 {
		out.WriteByte('\n')
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tUP\tKEY ID\tKEY STATE")
		for _, n := range kl.Nodes {
			state := dash(n.KeyState)
			if n.AckedKey != "" {
				state += " " + n.AckedKey
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, boolText(n.Up), dash(n.KeyID), state)
		}
		tw.Flush()
	}
	return nil
}

// formatRotation writes a PBS-style block describing a key rotation.
func formatRotation(out *bytes.Buffer, r admin.RotationInfo) {
	fmt.Fprintf(out, "Rotation %d\n", r.Seq)
	attr := func(name, v string) {
		if v != "" {
			fmt.Fprintf(out, "    %s = %s\n", name, v)
		}
	}
	tm := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	attr("phase", r.Phase)
	attr("distribution", r.Distribution)
	attr("reason", r.Reason)
	attr("old_key", r.OldKey)
	attr("new_key", r.NewKey)
	attr("started", tm(r.Started))
	if r.Phase == "distributing" {
		attr("acked", fmt.Sprintf("%d of %d", r.Acked, r.Waiting))
	}
	attr("deadline", tm(r.Deadline))
	attr("grace_until", tm(r.GraceUntil))
	if r.Behind > 0 {
		attr("needs_sync", strconv.Itoa(r.Behind))
	}
	if r.Queued > 0 {
		attr("queued", strconv.Itoa(r.Queued))
	}
	attr("next_step", r.Next)
	attr("error", r.Error)
}

// keyResult prints a key operation's KeyInfo result with a one-line
// summary, or the raw JSON if the server answered something else.
func (s *Session) keyResult(raw json.RawMessage, out *bytes.Buffer, summary func(admin.KeyInfo) string) error {
	var k admin.KeyInfo
	if s.JSON || json.Unmarshal(raw, &k) != nil || k.ID == "" {
		return writeJSON(out, raw)
	}
	out.WriteString(summary(k) + "\n")
	return nil
}

func runRotateKey(ctx context.Context, s *Session, _ Directive, out *bytes.Buffer) error {
	raw, err := s.call(ctx, admin.OpRotateKey, nil)
	if err != nil {
		return err
	}
	var r admin.RotationInfo
	if s.JSON || json.Unmarshal(raw, &r) != nil || r.Phase == "" {
		return writeJSON(out, raw)
	}
	switch {
	case r.Phase == "distributing" && r.Queued > 0:
		fmt.Fprintf(out, "key rotation %d restarts: key %s, being distributed, is replaced by a fresh key in a moment\n", r.Seq, r.NewKey)
	case r.Phase != "distributing" && r.Phase != "grace" || r.Queued > 0:
		fmt.Fprintf(out, "key rotation queued: rotation %d is in phase %s; a new rotation starts when it ends\n", r.Seq, r.Phase)
	case r.Phase == "grace":
		fmt.Fprintf(out, "key rotation %d: new key %s is active (no MOM connected to wait for); old key %s is retired at %s\n",
			r.Seq, r.NewKey, r.OldKey, r.GraceUntil.Format(time.RFC3339))
	case r.Distribution == "manual":
		fmt.Fprintf(out, "key rotation %d started: new key %s (next), manual distribution: nothing is pushed\n"+
			"next: export key %s file=PATH, run momgate-mom key import on every node, then activate key %s\n", r.Seq, r.NewKey, r.NewKey, r.NewKey)
	default:
		fmt.Fprintf(out, "key rotation %d started: new key %s (next), pushed to %d connected MOM(s); list key shows the progress\n", r.Seq, r.NewKey, r.Waiting)
	}
	return nil
}

func runExportKey(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	name := ""
	if len(d.Names) > 1 {
		name = d.Names[1]
	}
	for _, a := range d.Attrs {
		if a.Name == "file" {
			name = a.Value
		}
	}
	if name == "" {
		return fmt.Errorf("export key needs file=PATH")
	}
	file, err := filepath.Abs(name)
	if err != nil {
		return fmt.Errorf("file %s: %w", name, err)
	}
	raw, err := s.call(ctx, admin.OpExportKey, admin.KeyArgs{ID: d.Names[0], File: file})
	if err != nil {
		return err
	}
	return s.keyResult(raw, out, func(k admin.KeyInfo) string {
		return fmt.Sprintf("exported key %s (%s) to %s", k.ID, k.State, file)
	})
}

func runActivateKey(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	raw, err := s.call(ctx, admin.OpActivateKey, admin.KeyArgs{ID: d.Names[0], Force: len(d.Names) == 2})
	if err != nil {
		return err
	}
	return s.keyResult(raw, out, func(k admin.KeyInfo) string {
		msg := fmt.Sprintf("key %s is now %s", k.ID, k.State)
		if len(k.CutOff) > 0 {
			msg += fmt.Sprintf("\ncut off until they import it (momgate-mom key import): %s", strings.Join(k.CutOff, ", "))
		}
		return msg
	})
}
