package main

import (
	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/qmgr"
)

// manPage is what the man page says beyond --help.
func manPage() cliutil.ManPage {
	return cliutil.ManPage{
		Description: "momgate-qmgr administers a momgate server with the directives of PBS qmgr: commands and\n" +
			"objects may be abbreviated to an unambiguous prefix, and help DIRECTIVE explains one (see\n" +
			"DIRECTIVES).\n\n" + descriptionTail,
		Help: "Directives (unambiguous abbreviations accepted, as in PBS qmgr; help DIRECTIVE explains one):\n" +
			qmgr.DirectiveSummary() + "\n" + descriptionTail,
		Sections: []cliutil.ManSection{{Title: "DIRECTIVES", Items: directiveItems()}},
		Files: []cliutil.ManItem{
			{Term: "STATE_DIR/admin.sock", Text: "the server's admin socket (--state-dir names STATE_DIR, --socket the socket)"},
			{Term: "~/" + qmgr.HistoryFileName, Text: "the interactive history, owner-only, the newest 500 directives (--history-file)"},
		},
		ExitStatus: []cliutil.ManItem{
			{Term: "0", Text: "every directive ran"},
			{Term: "1", Text: "a directive does not parse (nothing ran), or bad flags"},
			{Term: "2", Text: "the server refused a directive or it failed; those before it stay applied"},
			{Term: "3", Text: "the server's admin socket cannot be reached"},
		},
		SeeAlso: []string{"momgate-server(8)", "momgate-mom(8)", "momgate-migrate(8)", "qmgr(8)", "pbsnodes(8)", "docs/QMGR.md"},
	}
}

func directiveItems() []cliutil.ManItem {
	var out []cliutil.ManItem
	for _, u := range qmgr.Directives() {
		out = append(out, cliutil.ManItem{Term: u.Usage, Text: u.Doc + "."})
	}
	return out
}
