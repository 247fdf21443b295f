package main

import "github.com/momgate/momgate/internal/cliutil"

// manPage is what the man page says beyond --help.
var manPage = cliutil.ManPage{
	Description: description,
	Files: []cliutil.ManItem{
		{Term: "/etc/momgate/server.toml", Text: "configuration read with --config (the shipped unit passes it)"},
		{Term: "STATE_DIR/identity.json", Text: "the server's X25519 identity key (secret, mode 0600); tokens pin its fingerprint"},
		{Term: "STATE_DIR/keyring.json", Text: "the cluster keys (secret, mode 0600)"},
		{Term: "STATE_DIR/state.json", Text: "nodes, attributes and enrollment tokens, with its journal"},
		{Term: "STATE_DIR/rotation.json", Text: "the key rotation in progress, with its journal rotation.journal (docs/KEYS.md)"},
		{Term: "STATE_DIR/deny.json", Text: "denied nodes and addresses, and the deleted nodes remembered, with its journal deny.journal (docs/KEYS.md)"},
		{Term: "STATE_DIR/marks.*, STATE_DIR/ceiling", Text: "replay guard state: per-sender high-water marks"},
		{Term: "STATE_DIR/audit.log", Text: "one line per admission attempt (--audit-log moves it)"},
		{Term: "STATE_DIR/admin.sock", Text: "the admin socket momgate-qmgr talks to (mode 0600, caller's uid checked)"},
	},
	ExitStatus: []cliutil.ManItem{
		{Term: "0", Text: "the server stopped cleanly (SIGTERM, SIGINT), or the command succeeded"},
		{Term: "1", Text: "bad flags or configuration, unusable state directory, or a listener that cannot be opened"},
	},
	SeeAlso: []string{"momgate-mom(8)", "momgate-qmgr(8)", "momgate-migrate(8)", "docs/DEPLOYMENT.md", "docs/SECURITY.md"},
}
