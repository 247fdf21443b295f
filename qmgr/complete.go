package qmgr

import (
	"context"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/momgate/momgate/internal/admin"
)

// Candidate is one completion of the word under the cursor: Word
// replaces the word, Suffix follows it (" " after a finished word, "="
// after an attribute that takes a value, "" where more may follow).
type Candidate struct {
	Word   string
	Suffix string
}

// Completer completes directives: commands, objects, node names, key
// ids, member names, attribute names and enumerated values. Node names,
// key ids and the group's member names come from the live server through
// Exec, fetched once and kept until Forget.
type Completer struct {
	Exec Executor // nil: no node names or key ids

	nodes, keys, members []string
	nodeSet              map[string]bool
	fetched              map[string]bool
}

// Forget drops the node names, key ids and member names fetched so far
// (a directive may have changed them).
func (c *Completer) Forget() {
	c.nodes, c.keys, c.members, c.nodeSet, c.fetched = nil, nil, nil, nil, nil
}

// Complete returns the word being typed at the end of prefix (the line
// up to the cursor) and its candidates, sorted. A prefix that does not
// lex (an open quote) gets none.
func (c *Completer) Complete(ctx context.Context, prefix string) (string, []Candidate) {
	start := 0 // byte offset of the word under the cursor
	if i := strings.LastIndexFunc(prefix, func(r rune) bool { return !isCompletionRune(r) }); i >= 0 {
		_, size := utf8.DecodeRuneInString(prefix[i:])
		start = i + size
	}
	word := prefix[start:]
	toks, err := lex(prefix[:start])
	if err != nil || strings.HasPrefix(word, "#") {
		return word, nil
	}
	head := []rune(prefix[:start])
	end := toks[len(toks)-1].col - 1 // tEOF: the column just after the last token
	if strings.TrimSpace(string(head[end:])) != "" {
		return word, nil // inside a comment
	}
	toks = toks[:len(toks)-1]
	var out []Candidate
	add := func(suffix string, words ...string) {
		for _, w := range words {
			// Node names are case-sensitive, everything else is not.
			if strings.HasPrefix(w, word) || !c.isNode(w) && strings.HasPrefix(strings.ToLower(w), strings.ToLower(word)) {
				out = append(out, Candidate{Word: w, Suffix: suffix})
			}
		}
	}
	c.candidates(ctx, toks, add)
	sort.Slice(out, func(i, j int) bool { return out[i].Word < out[j].Word })
	return word, out
}

// isCompletionRune: the word being completed is the run of these before
// the cursor.
func isCompletionRune(r rune) bool {
	return !unicode.IsSpace(r) && r != ',' && r != '=' && r != '"'
}

// candidates offers, through add, what may follow toks.
func (c *Completer) candidates(ctx context.Context, toks []token, add func(string, ...string)) {
	if len(toks) == 0 {
		add(" ", commandNames()...)
		return
	}
	if toks[0].kind != tWord {
		return
	}
	cmd, err := resolveCommand(toks[0].text, 1)
	if err != nil || commands[cmd].refuse != "" {
		return
	}
	if cmd == "help" {
		switch len(toks) {
		case 1:
			add(" ", commandNames()...)
		case 2:
			if sub, err := resolveCommand(toks[1].text, 1); err == nil {
				add(" ", objectsOf(sub)...)
			}
		}
		return
	}
	if commands[cmd].noObject {
		return
	}
	if len(toks) == 1 {
		add(" ", objectsOf(cmd)...)
		return
	}
	obj, err := resolve("object", toks[1].text, objectNames, 1)
	if err != nil {
		return
	}
	e := lookup(cmd, obj)
	if e == nil {
		return
	}
	rest := toks[2:]
	if named := lookupNamed(cmd, obj); named != nil {
		switch {
		case len(rest) == 0: // set server <Tab>: an attribute, or a member
			c.operandCandidates(ctx, named.operands[0], true, add)
		case (rest[0].kind == tWord || rest[0].kind == tString) && !isDefaultServer(rest[0].text) &&
			(len(rest) == 1 || rest[1].kind != tOp):
			e = named // the parser's rule: a first word without '=' is a name
		}
	}
	c.afterObject(ctx, e, rest, add)
}

// afterObject offers operands, attributes or values after `cmd obj`.
func (c *Completer) afterObject(ctx context.Context, e *entry, rest []token, add func(string, ...string)) {
	last := token{kind: tEOF}
	if len(rest) > 0 {
		last = rest[len(rest)-1]
	}
	if last.kind == tOp { // ATTR=value
		if len(rest) >= 2 {
			if spec := e.attr(rest[len(rest)-2].text); spec != nil {
				add("", spec.values...)
			}
		}
		return
	}
	assigning := false
	for _, t := range rest {
		assigning = assigning || t.kind == tOp
	}
	attrNames := func() {
		for _, a := range e.attrs {
			add("=", a.name)
		}
	}
	if assigning {
		if last.kind == tComma {
			attrNames()
		}
		return
	}
	g := groupIndex(rest)
	if g < 0 { // `set server ,`: a comma where no word was
		return
	}
	if g < len(e.operands) {
		od := e.operands[g]
		c.operandCandidates(ctx, od, last.kind != tComma, add)
		if !od.optional || od.list {
			return
		}
		g = len(e.operands) // export key ID file=PATH: the attribute may stand for the operand
	}
	if g == len(e.operands) {
		add(" ", e.show...)
		attrNames()
	}
}

// groupIndex is the index of the group the word after rest belongs to,
// where words joined by commas form one group (a list of node names, a
// list of attribute names).
func groupIndex(rest []token) int {
	groups := 0
	for i, t := range rest {
		if t.kind != tComma && (i == 0 || rest[i-1].kind != tComma) {
			groups++
		}
	}
	if len(rest) > 0 && rest[len(rest)-1].kind == tComma {
		return groups - 1
	}
	return groups
}

// operandCandidates offers node names, key ids or member names (none
// for a name to be created); @default too for the first word of an
// optional list of node names.
func (c *Completer) operandCandidates(ctx context.Context, od operand, first bool, add func(string, ...string)) {
	if od.fresh {
		return
	}
	switch od.label {
	case "node name":
		add(" ", c.fetch(ctx, "nodes")...)
		if od.optional && first {
			add(" ", DefaultServer)
		}
	case "key id":
		add(" ", c.fetch(ctx, "keys")...)
	case "member name":
		add(" ", c.fetch(ctx, "members")...)
	}
}

func (c *Completer) isNode(w string) bool { return c.nodeSet[w] }

// fetch returns the server's node names or key ids, asking it once.
func (c *Completer) fetch(ctx context.Context, what string) []string {
	if c.Exec == nil {
		return nil
	}
	if c.fetched == nil {
		c.fetched = map[string]bool{}
	}
	if !c.fetched[what] {
		c.fetched[what] = true // a failure is not retried until Forget
		switch what {
		case "nodes":
			var nodes []admin.NodeInfo
			if c.Exec.Call(ctx, admin.OpListNode, admin.ListNodeArgs{}, &nodes) == nil {
				c.nodeSet = make(map[string]bool, len(nodes))
				for _, n := range nodes {
					c.nodes = append(c.nodes, n.Name)
					c.nodeSet[n.Name] = true
				}
			}
		case "members":
			var rep admin.ServerReport
			if c.Exec.Call(ctx, admin.OpPrintServer, nil, &rep) == nil && rep.Server.Group != nil {
				for _, m := range rep.Server.Group.Members {
					c.members = append(c.members, m.Name)
				}
			}
		case "keys":
			var kl admin.KeyList
			if c.Exec.Call(ctx, admin.OpListKey, nil, &kl) == nil {
				for _, k := range kl.Keys {
					c.keys = append(c.keys, k.ID)
				}
			}
		}
	}
	switch what {
	case "nodes":
		return c.nodes
	case "members":
		return c.members
	}
	return c.keys
}

// CompleteLine completes the last word of a directive typed so far on a
// shell command line (momgate-qmgr -c "list node n<Tab>"): each result is
// prefix with that word replaced by a candidate. Node names and key ids
// come from the server cfg names, if it answers before ctx ends.
func CompleteLine(ctx context.Context, cfg Config, prefix string) []string {
	c := &Completer{}
	if path, err := cfg.SocketPath(); err == nil {
		lc := &lazyClient{path: path}
		defer lc.Close()
		c.Exec = lc
	}
	word, cands := c.Complete(ctx, prefix)
	head := prefix[:len(prefix)-len(word)]
	out := make([]string, len(cands))
	for i, k := range cands {
		out[i] = head + k.Word + k.Suffix
	}
	return out
}
