package qmgr

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// The directive table. A new directive is one entry here plus one runner
// in session.go (TestEveryEntryHasARunner checks the pairing).

// command describes a command word.
type command struct {
	noObject bool   // help, history, quit, exit
	refuse   string // recognised (a PBS habit) but not supported; never listed or completed
	// preferred wins an ambiguous abbreviation: "h" is help, as it
	// always was, although history also starts with h.
	preferred bool
	doc       string // for commands without directives: help's one line
}

var commands = map[string]command{
	"activate": {},
	"create":   {},
	"delete":   {},
	"export":   {},
	"list":     {},
	"print":    {},
	"rotate":   {},
	"set":      {},
	"unset":    {},
	"help":     {noObject: true, preferred: true, doc: "this summary; help COMMAND [OBJECT] explains one directive"},
	"history":  {noObject: true, doc: "the directives typed at this prompt and earlier ones (history file)"},
	"quit":     {noObject: true, doc: "leave qmgr"},
	"exit":     {noObject: true, doc: "leave qmgr"},
}

// objectNames are the objects, sorted.
var objectNames = []string{"key", "node", "server"}

// commandNames are the commands qmgr offers (in messages, help and
// completion), sorted; refused ones are left out.
func commandNames() []string {
	out := make([]string, 0, len(commands))
	for n, c := range commands {
		if c.refuse == "" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// resolveCommand maps a possibly abbreviated command word to a command,
// refused ones included (so that they get their explanation).
func resolveCommand(word string, col int) (string, error) {
	all := make([]string, 0, len(commands))
	for n := range commands {
		all = append(all, n)
	}
	sort.Strings(all)
	cmd, err := resolve("command", word, all, col)
	if err == nil {
		return cmd, nil
	}
	var cands []string
	for _, n := range all {
		if strings.HasPrefix(n, strings.ToLower(word)) && commands[n].preferred {
			cands = append(cands, n)
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	if _, err := resolve("command", word, commandNames(), col); err != nil {
		return "", err
	}
	return "", err
}

// operand is a positional argument after the object.
type operand struct {
	label    string // for messages: "node name", "key id", "file"
	list     bool   // NAME[,NAME...]; only as the last operand
	optional bool   // only as the last operand
	fresh    bool   // names something new (create server NAME): completion offers no names
	check    func(string) (string, error)
}

// attrSpec is an attribute a directive accepts.
type attrSpec struct {
	name     string // canonical spelling
	syntax   string // value syntax for messages and help
	doc      string
	required bool
	values   []string                     // the values of an enumeration, for completion
	check    func(string) (string, error) // validates, returns the canonical value
}

// entry is one directive: a command applied to an object.
type entry struct {
	command, object string
	operands        []operand
	attrs           []attrSpec
	needAttrs       bool // at least one attribute
	// show are the attribute names a directive takes without values:
	// those a list directive can be limited to (`list node n1
	// Mom,state`), or those unset resets; empty: none.
	show    []string
	usage   string
	doc     string
	example string // one directive, shown by help
	// validate checks the whole directive after parsing; end is the
	// column of the end of the line.
	validate func(d *Directive, end int) error
}

func (e *entry) attr(name string) *attrSpec {
	for i := range e.attrs {
		if strings.EqualFold(e.attrs[i].name, name) {
			return &e.attrs[i]
		}
	}
	return nil
}

func (e *entry) attrList() string {
	names := make([]string, len(e.attrs))
	for i, a := range e.attrs {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}

var (
	nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	keyIDRE    = regexp.MustCompile(`^[0-9A-Fa-f]{8}$`)
)

func checkNodeName(s string) (string, error) {
	if !nodeNameRE.MatchString(s) {
		return "", errors.New("want a letter or digit, then letters, digits, '.', '_' or '-', at most 64 in all")
	}
	return s, nil
}

func checkKeyID(s string) (string, error) {
	if !keyIDRE.MatchString(s) {
		return "", errors.New("want 8 hex digits, as list key shows")
	}
	return strings.ToLower(s), nil
}

func checkForce(s string) (string, error) {
	if !strings.EqualFold(s, "force") {
		return "", errors.New(`want "force" or nothing`)
	}
	return "force", nil
}

func checkFile(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty file name")
	}
	return s, nil
}

// checkMom checks a Mom= value: an IP address a node can hold, or a host
// name, which the server resolves when the directive runs.
func checkMom(s string) (string, error) {
	addr, host, err := admin.ParseMom(s)
	switch {
	case err != nil:
		return "", err
	case host != "":
		return host, nil
	}
	return addr.String(), nil
}

func checkPort(s string) (string, error) {
	digits := strings.TrimLeft(s, "0")
	if s == "" || len(digits) > 5 || strings.Trim(s, "0123456789") != "" {
		return "", errors.New("want a port number 1..65535")
	}
	n, _ := strconv.Atoi(digits)
	if n < 1 || n > 65535 {
		return "", errors.New("want a port number 1..65535")
	}
	return strconv.Itoa(n), nil
}

func checkEnum(values ...string) func(string) (string, error) {
	return func(s string) (string, error) {
		v := strings.ToLower(s)
		for _, ok := range values {
			if v == ok {
				return v, nil
			}
		}
		return "", fmt.Errorf("want one of %s", strings.Join(values, ", "))
	}
}

// enumAttr is an attribute whose value is one of values.
func enumAttr(name, doc string, values ...string) attrSpec {
	return attrSpec{name: name, syntax: strings.Join(values, "|"), doc: doc, values: values, check: checkEnum(values...)}
}

func checkDuration(s string) (string, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return "", errors.New("want a duration such as 90s, 15m or 1h")
	}
	return s, nil
}

var (
	nodeNames    = operand{label: "node name", list: true, check: checkNodeName}
	optNodeNames = operand{label: "node name", list: true, optional: true, check: checkNodeName}
	oneNodeName  = operand{label: "node name", check: checkNodeName}
	keyID        = operand{label: "key id", check: checkKeyID}
	optKeyFile   = operand{label: "file", optional: true, check: checkFile}
	optForce     = operand{label: "force", optional: true, check: checkForce}

	momAttr = attrSpec{name: "Mom", syntax: "ADDR|HOST", doc: "MOM IP address, or a host name the server resolves to one address now", check: checkMom}
)

// serverAttrs mirror the settable attributes of momgate-server
// (server/attrs.go); the server checks ranges.
var serverAttrs = []attrSpec{
	enumAttr("mode", "protocol mode: address-list push, both, or PING only", "legacy", "compat", "ping"),
	enumAttr("key_distribution", "keys pushed wrapped to each node, or exported key files", "auto", "manual"),
	{name: "token_ttl", syntax: "DURATION", doc: "lifetime of enrollment tokens issued by create node", check: checkDuration},
	{name: "freshness", syntax: "DURATION", doc: "first-contact freshness window for PINGs (0 disables)", check: checkDuration},
	{name: "heartbeat", syntax: "DURATION", doc: "interval of MOM heartbeat PINGs", check: checkDuration},
	{name: "key_grace", syntax: "DURATION", doc: "how long the previous cluster key stays accepted after a rotation", check: checkDuration},
	enumAttr("im_security", "weakest protection of new IM sessions between nodes that speak sealed sessions", "none", "auth", "encrypt"),
}

// serverAttrNames are the names of serverAttrs, in their order.
func serverAttrNames() []string {
	out := make([]string, len(serverAttrs))
	for i, a := range serverAttrs {
		out[i] = a.name
	}
	return out
}

// nodeShowAttrs are the attributes list node prints, in its order; a
// list node directive can name some of them.
var nodeShowAttrs = []string{"Mom", "Port", "state", "denied", "comment", "protocol", "versions", "upgraded",
	"key_id", "key_state", "fingerprint", "id", "created", "enrolled", "last_seen", "sealed", "session", "session_key_age"}

var entries = []entry{
	{
		command: "create", object: "node", operands: []operand{oneNodeName},
		attrs: []attrSpec{
			{name: "Mom", syntax: "ADDR|HOST", doc: momAttr.doc, required: true, check: checkMom},
			{name: "Port", syntax: "N", doc: "MOM IM port 1..65535 (default: the server's, 15003)", check: checkPort},
		},
		usage: "create node NAME Mom=ADDR|HOST[,Port=N]", doc: "create a node and print its one-time enrollment token",
		example: "create node n1 Mom=n1.cluster.example",
	},
	{
		command: "delete", object: "node", operands: []operand{nodeNames},
		usage: "delete node NAME[,NAME...]", doc: "delete nodes: denied at once everywhere, then the cluster key is rotated; run it again for a node in state deleting (a delete cut short)",
		example: "delete node n1,n2",
	},
	{
		command: "set", object: "node", operands: []operand{nodeNames}, needAttrs: true,
		attrs: []attrSpec{
			momAttr,
			enumAttr("protocol", "roll the node back to legacy admission (clears its no-downgrade mark)", "legacy"),
			enumAttr("upgraded", "the same: clear the node's no-downgrade mark (rollback)", "false"),
			enumAttr("sealed", "clear the node's sealed-sessions mark (its MOM rolled back to a version without them)", "false"),
		},
		usage: "set node NAME[,NAME...] ATTR=VALUE[,...]", doc: "change node attributes",
		example: "set node n1 Mom=10.0.0.21",
	},
	{
		command: "list", object: "node", operands: []operand{optNodeNames}, show: nodeShowAttrs,
		usage:   "list node [NAME[,NAME...]|@default] [ATTR[,ATTR...]]",
		doc:     "show nodes (all of them without a name), or only the attributes named",
		example: "list node n1 Mom,state",
	},
	{
		command: "print", object: "node", operands: []operand{optNodeNames},
		usage: "print node [NAME[,NAME...]|@default]", doc: "print create node directives for nodes",
		example: "print node @default",
	},
	{
		command: "list", object: "server",
		usage: "list server", doc: "show the server and its attributes",
		example: "list server",
	},
	{
		command: "print", object: "server",
		usage: "print server", doc: "print directives that recreate the server configuration and nodes",
		example: "print server",
	},
	{
		command: "set", object: "server", attrs: serverAttrs, needAttrs: true,
		usage: "set server ATTR=VALUE[,...]", doc: "set server attributes (all or nothing)",
		example: "set server mode=compat,token_ttl=2h",
	},
	{
		command: "unset", object: "server", show: serverAttrNames(),
		usage: "unset server ATTR[,ATTR...]", doc: "put server attributes back to their defaults (all or nothing)",
		example: "unset server token_ttl,heartbeat",
		validate: func(d *Directive, end int) error {
			if len(d.Show) == 0 {
				return syntaxErr(end, "unset server needs ATTR (attributes: %s)", strings.Join(serverAttrNames(), ", "))
			}
			return nil
		},
	},
	{
		command: "list", object: "key",
		usage: "list key", doc: "show cluster keys and the key each node holds",
		example: "list key",
	},
	{
		command: "rotate", object: "key",
		usage: "rotate key", doc: "start a cluster key rotation",
		example: "rotate key",
	},
	{
		command: "export", object: "key", operands: []operand{keyID, optKeyFile},
		attrs: []attrSpec{{name: "file", syntax: "PATH", doc: "new key file, written with mode 0400 (never overwritten)", check: checkFile}},
		usage: "export key ID file=PATH", doc: "write cluster key ID to a new file, mode 0400, for manual distribution",
		example: "export key 0a1b2c3d file=/root/key-0a1b2c3d",
		validate: func(d *Directive, end int) error {
			switch {
			case len(d.Names) == 1 && len(d.Attrs) == 0:
				return syntaxErr(end, "export key needs file=PATH (usage: export key ID file=PATH)")
			case len(d.Names) == 2 && len(d.Attrs) == 1:
				return syntaxErr(end, "export key takes one file: give file=PATH or FILE, not both")
			}
			return nil
		},
	},
	{
		command: "activate", object: "key", operands: []operand{keyID, optForce},
		usage: "activate key ID [force]",
		doc: "make key ID the active cluster key (manual distribution); refused while nodes do not hold it yet, " +
			"which force overrides, cutting them off",
		example: "activate key 0a1b2c3d",
	},
}

func lookup(cmd, obj string) *entry {
	for i := range entries {
		if entries[i].command == cmd && entries[i].object == obj {
			return &entries[i]
		}
	}
	return nil
}

// lookupNamed is the form of cmd obj that starts with an operand, for a
// directive whose first form takes none: `set server NAME standby=...`
// beside `set server ATTR=VALUE`. nil if there is no such form.
func lookupNamed(cmd, obj string) *entry {
	if e := lookup(cmd, obj); e == nil || len(e.operands) > 0 {
		return nil
	}
	for i := range entries {
		if entries[i].command == cmd && entries[i].object == obj && len(entries[i].operands) > 0 {
			return &entries[i]
		}
	}
	return nil
}

// entryOf is the entry d was parsed with: the named form when d has
// operands and its directive has one.
func entryOf(d Directive) *entry {
	if len(d.Names) > 0 {
		if e := lookupNamed(d.Command, d.Object); e != nil {
			return e
		}
	}
	return lookup(d.Command, d.Object)
}

// objectsOf lists the objects cmd works on.
func objectsOf(cmd string) []string {
	var out []string
	for _, o := range objectNames {
		if lookup(cmd, o) != nil {
			out = append(out, o)
		}
	}
	return out
}
