// Package qmgr is the directive language and CLI engine of momgate-qmgr,
// modelled on PBS qmgr.
//
// A directive is
//
//	command object [name[,name...]] [attr OP value[, attr OP value...]]
//
// for example `create node n1 Mom=127.0.0.2,Port=15003`,
// `set server token_ttl = 1h`, `list node`, `delete node n1,n2`,
// `export key 0a1b2c3d /root/key0`. Commands, objects and attribute names
// are case-insensitive; commands and objects may be abbreviated to any
// unambiguous prefix (c=create, d=delete, s=set, l=list, p=print, n=node,
// s=server, k=key). Node names are case-sensitive. Values containing
// spaces, commas, '=' or '"' are written in double quotes, with \" and \\
// as the only escapes. A '#' at the start of a word begins a comment.
//
// Parse turns one line into a Directive, validated against the table of
// directives; Session.Run executes a Directive through an Executor (the
// server's admin socket) and prints PBS-like text or JSON.
package qmgr

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Directive is one parsed qmgr directive. Command and Object are the
// canonical lower-case words; Names are the operands (node names, or a
// key id and a file); Attrs are the attribute assignments in order, with
// canonical attribute names; Show are the attributes a list directive
// prints (all when empty), as in `list node n1 Mom,state`, or those an
// unset directive resets (`unset server token_ttl`). For help,
// Names are the canonical words of the topic (`help set server`). The
// zero Directive is a blank line.
type Directive struct {
	Command string
	Object  string
	Names   []string
	Attrs   []Attr
	Show    []string
}

// Attr is one attribute assignment of a Directive.
type Attr struct {
	Name  string // canonical attribute name, e.g. "Mom", "mode"
	Op    string // "=", "+=" or "-="
	Value string
}

// ParseError is a directive that does not parse or validate, with the
// 1-based column (in characters) it points at.
type ParseError struct {
	Col  int
	Kind string // "syntax error" or "bad value"
	Msg  string
}

// Error formats the error as "qmgr: KIND at column N: MSG".
func (e *ParseError) Error() string {
	return fmt.Sprintf("qmgr: %s at column %d: %s", e.Kind, e.Col, e.Msg)
}

func syntaxErr(col int, format string, args ...any) *ParseError {
	return &ParseError{Col: col, Kind: "syntax error", Msg: fmt.Sprintf(format, args...)}
}

func valueErr(col int, format string, args ...any) *ParseError {
	return &ParseError{Col: col, Kind: "bad value", Msg: fmt.Sprintf(format, args...)}
}

type tokKind int

const (
	tWord   tokKind = iota // unquoted word
	tString                // "quoted string", text unescaped
	tComma                 // ,
	tOp                    // = += -=
	tEOF                   // end of line (or start of a comment)
)

type token struct {
	kind tokKind
	text string
	col  int // 1-based column of the first character
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of line"
	case tComma:
		return "','"
	case tOp:
		return "'" + t.text + "'"
	}
	return fmt.Sprintf("%q", t.text)
}

// isOpAt reports whether an operator +=, -= or = starts at rs[i].
func isOpAt(rs []rune, i int) bool {
	if rs[i] == '=' {
		return true
	}
	return (rs[i] == '+' || rs[i] == '-') && i+1 < len(rs) && rs[i+1] == '='
}

func isWordRune(rs []rune, i int) bool {
	r := rs[i]
	return !unicode.IsSpace(r) && !unicode.IsControl(r) && r != ',' && r != '"' && !isOpAt(rs, i)
}

// lex splits a line into tokens; the last token is always tEOF.
func lex(line string) ([]token, error) {
	if !utf8.ValidString(line) {
		col := 1
		for i, r := range line {
			if r == utf8.RuneError {
				if _, n := utf8.DecodeRuneInString(line[i:]); n == 1 {
					return nil, syntaxErr(col, "invalid UTF-8")
				}
			}
			col++
		}
	}
	rs := []rune(line)
	var toks []token
	end := 1 // column just after the last token
	for i := 0; i < len(rs); {
		r, col := rs[i], i+1
		switch {
		case unicode.IsSpace(r):
			i++
			continue
		case r == '#':
			i = len(rs)
			continue
		case unicode.IsControl(r):
			return nil, syntaxErr(col, "control character %U", r)
		case r == ',':
			toks = append(toks, token{tComma, ",", col})
			i++
		case isOpAt(rs, i):
			n := 1
			if r != '=' {
				n = 2
			}
			toks = append(toks, token{tOp, string(rs[i : i+n]), col})
			i += n
		case r == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != '"'; j++ {
				c := rs[j]
				if c == '\\' {
					if j+1 >= len(rs) {
						j = len(rs)
						break
					}
					j++
					if rs[j] != '"' && rs[j] != '\\' {
						return nil, syntaxErr(j, `invalid escape \%c in quoted string (only \" and \\)`, rs[j])
					}
					c = rs[j]
				} else if unicode.IsControl(c) && c != '\t' {
					return nil, syntaxErr(j+1, "control character %U in quoted string", c)
				}
				b.WriteRune(c)
			}
			if j >= len(rs) {
				return nil, syntaxErr(col, "unterminated quoted string")
			}
			toks = append(toks, token{tString, b.String(), col})
			i = j + 1
		default:
			j := i
			for j < len(rs) && isWordRune(rs, j) {
				j++
			}
			toks = append(toks, token{tWord, string(rs[i:j]), col})
			i = j
		}
		end = i + 1
	}
	return append(toks, token{tEOF, "", end}), nil
}

// resolve maps a possibly abbreviated word to one of names (lower case).
func resolve(what, word string, names []string, col int) (string, error) {
	w := strings.ToLower(word)
	var cands []string
	for _, n := range names {
		if n == w {
			return n, nil
		}
		if strings.HasPrefix(n, w) {
			cands = append(cands, n)
		}
	}
	switch len(cands) {
	case 1:
		return cands[0], nil
	case 0:
		return "", syntaxErr(col, "unknown %s %q (%ss: %s)", what, word, what, strings.Join(names, ", "))
	}
	return "", syntaxErr(col, "ambiguous %s %q: could be %s", what, word, strings.Join(cands, ", "))
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.peek(0)
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

// atOperand reports whether the next token is a name rather than the
// start of an attribute assignment.
func (p *parser) atOperand() bool {
	t := p.peek(0)
	return (t.kind == tWord || t.kind == tString) && p.peek(1).kind != tOp
}

// Parse parses and validates one directive line. A blank line or a
// comment gives the zero Directive and no error.
func Parse(line string) (Directive, error) {
	toks, err := lex(line)
	if err != nil {
		return Directive{}, err
	}
	p := &parser{toks: toks}
	d, err := p.parse()
	if err != nil {
		return Directive{}, err
	}
	return d, nil
}

func (p *parser) parse() (Directive, error) {
	t := p.next()
	if t.kind == tEOF {
		return Directive{}, nil
	}
	if t.kind != tWord {
		return Directive{}, syntaxErr(t.col, "expected a command, found %s", t.describe())
	}
	cmd, err := resolveCommand(t.text, t.col)
	if err != nil {
		return Directive{}, err
	}
	cd := commands[cmd]
	d := Directive{Command: cmd}
	if cd.refuse != "" {
		return Directive{}, syntaxErr(t.col, "%s", cd.refuse)
	}
	if cmd == "help" {
		return p.parseHelp(d)
	}
	if cd.noObject {
		if t := p.peek(0); t.kind != tEOF {
			return Directive{}, syntaxErr(t.col, "%s takes no arguments", cmd)
		}
		return d, nil
	}

	t = p.next()
	objs := objectsOf(cmd)
	if t.kind != tWord {
		return Directive{}, syntaxErr(t.col, "expected an object after %s (%s), found %s", cmd, strings.Join(objs, ", "), t.describe())
	}
	obj, err := resolve("object", t.text, objectNames, t.col)
	if err != nil {
		return Directive{}, err
	}
	e := lookup(cmd, obj)
	if e == nil {
		return Directive{}, syntaxErr(t.col, "no directive %q: %s works on %s", cmd+" "+obj, cmd, strings.Join(objs, ", "))
	}
	d.Object = obj

	// set server NAME standby=true|false: a first word that no operator
	// follows, other than @default, is a member name (an attribute always
	// has its '='). The rule is the words' alone: qmgr need not know the
	// group's members to parse a line.
	if named := lookupNamed(cmd, obj); named != nil && p.atOperand() && !isDefaultServer(p.peek(0).text) {
		e = named
	}
	if len(e.operands) == 0 && p.atOperand() && isDefaultServer(p.peek(0).text) {
		p.next() // `print server @default`: the only server there is
	}
	for _, od := range e.operands {
		if !p.atOperand() {
			if od.optional {
				break
			}
			return Directive{}, syntaxErr(p.peek(0).col, "expected %s, found %s (usage: %s)", od.label, p.peek(0).describe(), e.usage)
		}
		if t := p.peek(0); isDefaultServer(t.text) {
			if !od.optional || !od.list {
				return Directive{}, syntaxErr(t.col, "%s %s needs %ss: @default (every node) works only with list and print (usage: %s)", cmd, obj, od.label, e.usage)
			}
			p.next() // every node of the default server
			break
		}
		for {
			t := p.next()
			text, err := stripServer(t.text)
			if err != nil {
				return Directive{}, valueErr(t.col, "%s %q: %v", od.label, t.text, err)
			}
			v, err := od.check(text)
			if err != nil {
				return Directive{}, valueErr(t.col, "%s %q: %v", od.label, t.text, err)
			}
			for _, n := range d.Names {
				if od.list && n == v {
					return Directive{}, valueErr(t.col, "%s %s given twice", od.label, v)
				}
			}
			d.Names = append(d.Names, v)
			if p.peek(0).kind != tComma {
				break
			}
			if !od.list {
				if nt := p.peek(1); (nt.kind == tWord || nt.kind == tString) && p.peek(2).kind != tOp {
					return Directive{}, syntaxErr(p.peek(0).col, "%s %s takes a single %s (usage: %s)", cmd, obj, od.label, e.usage)
				}
				break
			}
			p.next()
			if !p.atOperand() {
				return Directive{}, syntaxErr(p.peek(0).col, "expected %s after ',', found %s", od.label, p.peek(0).describe())
			}
		}
	}

	if len(e.show) > 0 && p.atOperand() {
		if err := p.parseShow(e, &d); err != nil {
			return Directive{}, err
		}
	}
	seen := map[string]bool{}
	for p.peek(0).kind != tEOF {
		t := p.peek(0)
		if len(d.Attrs) > 0 {
			if t.kind != tComma {
				return Directive{}, syntaxErr(t.col, "expected ',' or end of line, found %s", t.describe())
			}
			p.next()
			t = p.peek(0)
		} else if p.atOperand() && !(t.kind == tWord && e.attr(t.text) != nil) {
			if first := lookup(cmd, obj); first != e && len(d.Names) == 1 && first.attr(d.Names[0]) != nil {
				// `set server mode compat`: an attribute without its '='.
				return Directive{}, syntaxErr(t.col, "expected '=' after %s, found %s", first.attr(d.Names[0]).name, t.describe())
			}
			return Directive{}, syntaxErr(t.col, "unexpected %s (usage: %s)", t.describe(), e.usage)
		} else if len(e.attrs) == 0 && len(e.show) > 0 {
			return Directive{}, syntaxErr(t.col, "%s %s takes attribute names, not ATTR=VALUE (usage: %s)", cmd, obj, e.usage)
		} else if len(e.attrs) == 0 {
			return Directive{}, syntaxErr(t.col, "%s %s takes no attributes (usage: %s)", cmd, obj, e.usage)
		}
		if t.kind != tWord || !isAttrName(t.text) {
			return Directive{}, syntaxErr(t.col, "expected attribute name, found %s", t.describe())
		}
		p.next()
		spec := e.attr(t.text)
		if spec == nil {
			hint := ""
			if first := lookup(cmd, obj); first != e && first.attr(t.text) != nil {
				hint = fmt.Sprintf("; %s is an attribute of %s %s without a name (usage: %s)", first.attr(t.text).name, cmd, obj, first.usage)
			}
			return Directive{}, syntaxErr(t.col, "unknown attribute %q for %s %s (allowed: %s)%s", t.text, cmd, obj, e.attrList(), hint)
		}
		if seen[spec.name] {
			return Directive{}, syntaxErr(t.col, "attribute %s given twice", spec.name)
		}
		seen[spec.name] = true
		op := p.next()
		if op.kind != tOp {
			return Directive{}, syntaxErr(op.col, "expected '=' after %s, found %s", spec.name, op.describe())
		}
		if op.text != "=" {
			return Directive{}, syntaxErr(op.col, "operator %s is not supported for %s (use =)", op.text, spec.name)
		}
		v := p.next()
		if v.kind != tWord && v.kind != tString {
			return Directive{}, syntaxErr(v.col, "expected a value for %s, found %s", spec.name, v.describe())
		}
		val, err := spec.check(v.text)
		if err != nil {
			return Directive{}, valueErr(v.col, "%s %q: %v", spec.name, v.text, err)
		}
		d.Attrs = append(d.Attrs, Attr{Name: spec.name, Op: op.text, Value: val})
	}
	end := p.peek(0).col
	for _, a := range e.attrs {
		if a.required && !seen[a.name] {
			return Directive{}, syntaxErr(end, "%s %s needs %s=%s (usage: %s)", cmd, obj, a.name, a.syntax, e.usage)
		}
	}
	if e.needAttrs && len(d.Attrs) == 0 {
		return Directive{}, syntaxErr(end, "%s %s needs ATTR=VALUE (allowed: %s)", cmd, obj, e.attrList())
	}
	if e.validate != nil {
		if err := e.validate(&d, end); err != nil {
			return Directive{}, err
		}
	}
	return d, nil
}

func isAttrName(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// String returns the directive in canonical form; Parse(d.String())
// returns d for every d that Parse produced.
func (d Directive) String() string {
	if d.Command == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString(d.Command)
	if d.Object != "" {
		b.WriteString(" " + d.Object)
	}
	if len(d.Names) > 0 {
		b.WriteString(" " + d.namesString())
	}
	if len(d.Show) > 0 {
		if e := entryOf(d); len(d.Names) == 0 && e != nil && len(e.operands) > 0 {
			b.WriteString(" " + DefaultServer) // every node, then the attributes
		}
		b.WriteString(" " + strings.Join(d.Show, ","))
	}
	for i, a := range d.Attrs {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		op := a.Op
		if op == "" {
			op = "="
		}
		b.WriteString(a.Name + op + Quote(a.Value))
	}
	return b.String()
}

// namesString formats the operands: a list with commas, separate
// operands with spaces.
func (d Directive) namesString() string {
	if d.Command == "help" {
		return strings.Join(d.Names, " ")
	}
	e := entryOf(d)
	parts := make([]string, 0, len(d.Names))
	rest := d.Names
	if e != nil {
		for _, od := range e.operands {
			if len(rest) == 0 {
				break
			}
			if od.list {
				break
			}
			parts = append(parts, Quote(rest[0]))
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		q := make([]string, len(rest))
		for i, n := range rest {
			q[i] = Quote(n)
		}
		parts = append(parts, strings.Join(q, ","))
	}
	return strings.Join(parts, " ")
}

// head is the directive without attributes, for messages.
func (d Directive) head() string {
	s := d.Command
	if d.Object != "" {
		s += " " + d.Object
	}
	if len(d.Names) > 0 {
		s += " " + d.namesString()
	}
	return s
}

// Quote returns v as a directive word, in double quotes when it would
// not otherwise read back as one word.
func Quote(v string) string {
	rs := []rune(v)
	plain := len(rs) > 0 && rs[0] != '#'
	for i := 0; plain && i < len(rs); i++ {
		plain = isWordRune(rs, i) && rs[i] != '='
	}
	if plain {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
