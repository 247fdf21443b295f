package main

import "github.com/momgate/momgate/internal/cliutil"

// manPage is what the man page says beyond --help.
var manPage = cliutil.ManPage{
	Description: description,
	Files: []cliutil.ManItem{
		{Term: "/etc/momgate/mom.toml", Text: "configuration read with --config (the shipped unit passes it)"},
		{Term: "/etc/momgate/mom.env", Text: "environment of the shipped unit, e.g. MOMGATE_MOM_ENROLL=TOKEN for the first start (mode 0600)"},
		{Term: "STATE_DIR/identity.json", Text: "the MOM's X25519 identity key (secret, mode 0600)"},
		{Term: "STATE_DIR/keyring.json", Text: "the cluster keys (secret, mode 0600)"},
		{Term: "STATE_DIR/mom.json", Text: "the enrollment: node id and the pinned server key"},
		{Term: "STATE_DIR/deny.json", Text: "the deny list the server pushed"},
		{Term: "STATE_DIR/marks.*, STATE_DIR/ceiling", Text: "replay guard state: per-sender high-water marks"},
		{Term: "STATE_DIR/audit.log", Text: "one line per admission attempt (--audit-log moves it)"},
		{Term: "STATE_DIR/admin.sock", Text: "the admin socket of peers, status, ping, job and key"},
	},
	ExitStatus: []cliutil.ManItem{
		{Term: "0", Text: "the MOM stopped cleanly (SIGTERM, SIGINT), or the command succeeded"},
		{Term: "1", Text: "bad flags or configuration, a refused enrollment, an unusable state directory, or a failed command"},
		{Term: "4", Text: "the node was deleted (delete node): the server refused it as revoked, so the MOM stopped for good; the shipped unit does not restart it (RestartPreventExitStatus=4)"},
	},
	SeeAlso: []string{"momgate-server(8)", "momgate-qmgr(8)", "docs/DEPLOYMENT.md", "docs/KEYS.md"},
}
