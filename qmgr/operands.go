package qmgr

import (
	"errors"
	"strings"
)

// DefaultServer is PBS's name for the server qmgr talks to: `list node
// @default` lists every node, `list node n1@default` is `list node n1`.
// momgate-qmgr talks to exactly one server, so no other @SERVER is known.
const DefaultServer = "@default"

func isDefaultServer(word string) bool { return strings.EqualFold(word, DefaultServer) }

// stripServer removes a trailing @default from an operand.
func stripServer(word string) (string, error) {
	at := strings.LastIndexByte(word, '@')
	if at < 0 {
		return word, nil
	}
	switch {
	case !isDefaultServer(word[at:]):
		return "", errors.New("momgate-qmgr talks to one server: the only server name is @default")
	case at == 0:
		return "", errors.New("@default alone means every node: do not mix it with names")
	}
	return word[:at], nil
}

// parseShow reads the attribute names a list directive is limited to.
func (p *parser) parseShow(e *entry, d *Directive) error {
	for {
		t := p.next()
		name := ""
		for _, a := range e.show {
			if t.kind == tWord && strings.EqualFold(a, t.text) {
				name = a
			}
		}
		if name == "" {
			return syntaxErr(t.col, "unknown attribute %s for %s %s (attributes: %s; names are joined with ',')",
				t.describe(), e.command, e.object, strings.Join(e.show, ", "))
		}
		for _, n := range d.Show {
			if n == name {
				return valueErr(t.col, "attribute %s given twice", name)
			}
		}
		d.Show = append(d.Show, name)
		if p.peek(0).kind != tComma {
			return nil
		}
		p.next()
		if !p.atOperand() {
			return syntaxErr(p.peek(0).col, "expected an attribute name after ',', found %s", p.peek(0).describe())
		}
	}
}

// parseHelp reads `help [COMMAND [OBJECT]]`; Names hold the canonical
// words.
func (p *parser) parseHelp(d Directive) (Directive, error) {
	t := p.peek(0)
	if t.kind == tEOF {
		return d, nil
	}
	p.next()
	if t.kind != tWord {
		return Directive{}, syntaxErr(t.col, "help takes a command, found %s", t.describe())
	}
	cmd, err := resolveCommand(t.text, t.col)
	if err != nil {
		return Directive{}, err
	}
	if r := commands[cmd].refuse; r != "" {
		return Directive{}, syntaxErr(t.col, "%s", r)
	}
	d.Names = []string{cmd}
	if t := p.peek(0); t.kind != tEOF && !commands[cmd].noObject {
		p.next()
		obj, err := resolve("object", t.text, objectsOf(cmd), t.col)
		if t.kind != tWord || err != nil {
			return Directive{}, syntaxErr(t.col, "help %s takes an object: %s", cmd, strings.Join(objectsOf(cmd), ", "))
		}
		d.Names = append(d.Names, obj)
	}
	if t := p.peek(0); t.kind != tEOF {
		return Directive{}, syntaxErr(t.col, "unexpected %s (usage: help [COMMAND [OBJECT]])", t.describe())
	}
	return d, nil
}
