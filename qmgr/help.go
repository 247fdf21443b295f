package qmgr

import (
	"fmt"
	"strings"
)

// helpText is the directive summary printed by help.
func helpText() string {
	var b strings.Builder
	b.WriteString("Directives (commands and objects may be abbreviated to an unambiguous prefix:\n" +
		"c=create d=delete s=set l=list p=print r=rotate; n=node s=server k=key):\n")
	b.WriteString(DirectiveSummary())
	b.WriteString("Attributes:\n")
	seen := map[string]bool{}
	for _, e := range entries {
		for _, a := range e.attrs {
			key := e.object + " " + a.name
			if seen[key] {
				continue
			}
			seen[key] = true
			fmt.Fprintf(&b, "  %-6s %-35s %s\n", e.object, a.name+"="+a.syntax, a.doc)
		}
	}
	b.WriteString("Values with spaces, ',' or '=' go in double quotes. '#' starts a comment.\n" +
		"NAME@default and @default name the one server qmgr talks to, as in PBS.\n")
	return b.String()
}

// DirectiveSummary lists every directive's usage and what it does, one
// indented line each, as help and momgate-qmgr --help show them.
func DirectiveSummary() string {
	const width = 38 // a longer usage gets its description on the next line
	var b strings.Builder
	line := func(usage, doc string) {
		if len(usage) > width {
			fmt.Fprintf(&b, "  %s\n  %-*s  %s\n", usage, width, "", doc)
			return
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, usage, doc)
	}
	for _, u := range Directives() {
		line(u.Usage, u.Doc)
	}
	return b.String()
}

// topicHelp explains the directives of one command (words[0]), or one
// directive (words[0] words[1]).
func topicHelp(words []string) string {
	var b strings.Builder
	cmd := words[0]
	if c := commands[cmd]; c.noObject {
		fmt.Fprintf(&b, "%s: %s\n", cmd, c.doc)
		if cmd == "history" {
			b.WriteString("Up and Down walk the history, Ctrl-R searches it; it is kept in " + historyFileDoc + ".\n")
		}
		return b.String()
	}
	for _, e := range entries {
		if e.command != cmd || len(words) > 1 && e.object != words[1] {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s\n    %s.\n", e.usage, upperFirst(e.doc))
		for _, a := range e.attrs {
			req := ""
			if a.required {
				req = " (required)"
			}
			fmt.Fprintf(&b, "    %s=%s%s: %s\n", a.name, a.syntax, req, a.doc)
		}
		if len(e.show) > 0 {
			fmt.Fprintf(&b, "    ATTR: %s\n", strings.Join(e.show, ", "))
		}
		if e.example != "" {
			fmt.Fprintf(&b, "    Example: %s\n", e.example)
		}
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Usage is one directive's usage and what it does.
type Usage struct{ Usage, Doc string }

// Directives lists every directive, help, history and quit.
func Directives() []Usage {
	var out []Usage
	for _, e := range entries {
		out = append(out, Usage{e.usage, e.doc})
	}
	out = append(out, Usage{"help [COMMAND [OBJECT]]", commands["help"].doc}, Usage{"history", commands["history"].doc},
		Usage{"quit, exit", commands["quit"].doc})
	return out
}
