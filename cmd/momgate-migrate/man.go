package main

import "github.com/momgate/momgate/internal/cliutil"

// manPage is what the man page says beyond --help.
var manPage = cliutil.ManPage{
	Description: "The helper of migration/rolling-migrate.sh: it plans a rolling migration from the legacy\n" +
		"protocol to PING (or back) in batches, keeps its state file, and checks the cluster view between\n" +
		"steps. Commands that take the cluster view read `momgate-qmgr --json -c \"print server\"` on\n" +
		"standard input. See docs/MIGRATION.md.",
	Files: []cliutil.ManItem{
		{Term: "./momgate-migration.json", Text: "the migration state file (--state): the plan and the batches done"},
	},
	ExitStatus: []cliutil.ManItem{
		{Term: "0", Text: "success; for check, the condition holds"},
		{Term: "1", Text: "check: the condition does not hold (yet)"},
		{Term: "2", Text: "bad usage, bad input or an I/O failure"},
	},
	SeeAlso: []string{"momgate-qmgr(8)", "momgate-server(8)", "momgate-mom(8)", "docs/MIGRATION.md"},
}
