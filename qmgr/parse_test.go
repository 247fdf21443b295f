package qmgr

import (
	"reflect"
	"strings"
	"testing"
)

func attrs(kv ...string) []Attr {
	var out []Attr
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Attr{Name: kv[i], Op: "=", Value: kv[i+1]})
	}
	return out
}

func TestParseValid(t *testing.T) {
	createN1 := Directive{Command: "create", Object: "node", Names: []string{"n1"}, Attrs: attrs("Mom", "127.0.0.2", "Port", "15003")}
	for _, tc := range []struct {
		in   string
		want Directive
	}{
		{"create node n1 Mom=127.0.0.2,Port=15003", createN1},
		{"create node n1 Mom = 127.0.0.2, Port = 15003", createN1},
		{"  CREATE  NODE n1   mom=127.0.0.2 ,port=015003  # trailing comment", createN1},
		{"c n n1 Mom=127.0.0.2,Port=15003", createN1},
		{"cr no n1 Mom=\"127.0.0.2\",Port=\"15003\"", createN1},
		{"create node n1 Mom=::ffff:10.0.0.1", Directive{"create", "node", []string{"n1"}, attrs("Mom", "10.0.0.1"), nil}},
		{"create node cn01 Mom=CN01.Cluster.", Directive{"create", "node", []string{"cn01"}, attrs("Mom", "cn01.cluster"), nil}},
		{"set node cn01 Mom=cn01-b", Directive{"set", "node", []string{"cn01"}, attrs("Mom", "cn01-b"), nil}},
		{"create node N.1_x-y Mom=0:0::0:1", Directive{"create", "node", []string{"N.1_x-y"}, attrs("Mom", "::1"), nil}},
		{"set server mode=compat", Directive{"set", "server", nil, attrs("mode", "compat"), nil}},
		{"s s MODE=Compat", Directive{"set", "server", nil, attrs("mode", "compat"), nil}},
		{"set server token_ttl = 1h", Directive{"set", "server", nil, attrs("token_ttl", "1h"), nil}},
		{"set server key_distribution=manual, freshness=0, heartbeat=2s, key_grace=1m",
			Directive{"set", "server", nil, attrs("key_distribution", "manual", "freshness", "0", "heartbeat", "2s", "key_grace", "1m"), nil}},
		{"set server s2 standby=true", Directive{"set", "server", []string{"s2"}, attrs("standby", "true"), nil}},
		{"s s s2 STANDBY=False", Directive{"set", "server", []string{"s2"}, attrs("standby", "false"), nil}},
		{`set server "s-3.b" standby = true`, Directive{"set", "server", []string{"s-3.b"}, attrs("standby", "true"), nil}},
		{"set server mode standby=true", Directive{"set", "server", []string{"mode"}, attrs("standby", "true"), nil}},
		{"set server s2@default standby=false", Directive{"set", "server", []string{"s2"}, attrs("standby", "false"), nil}},
		{"set server @default key_grace=1s", Directive{"set", "server", nil, attrs("key_grace", "1s"), nil}},
		{"set server key_grace=1s", Directive{"set", "server", nil, attrs("key_grace", "1s"), nil}},
		{"set node n1 Mom=10.0.0.9", Directive{"set", "node", []string{"n1"}, attrs("Mom", "10.0.0.9"), nil}},
		{"set node n1,n2 protocol=LEGACY", Directive{"set", "node", []string{"n1", "n2"}, attrs("protocol", "legacy"), nil}},
		{"list node", Directive{Command: "list", Object: "node"}},
		{"l n", Directive{Command: "list", Object: "node"}},
		{"li node n1", Directive{"list", "node", []string{"n1"}, nil, nil}},
		{"list node n1,N1, n2", Directive{"list", "node", []string{"n1", "N1", "n2"}, nil, nil}},
		{"print node", Directive{Command: "print", Object: "node"}},
		{"print server", Directive{Command: "print", Object: "server"}},
		{"p s", Directive{Command: "print", Object: "server"}},
		{"list server", Directive{Command: "list", Object: "server"}},
		{"delete node n1", Directive{"delete", "node", []string{"n1"}, nil, nil}},
		{"d n n1,n2", Directive{"delete", "node", []string{"n1", "n2"}, nil, nil}},
		{"del node n1", Directive{"delete", "node", []string{"n1"}, nil, nil}},
		{"list key", Directive{Command: "list", Object: "key"}},
		{"l k", Directive{Command: "list", Object: "key"}},
		{"rotate key", Directive{Command: "rotate", Object: "key"}},
		{"r k", Directive{Command: "rotate", Object: "key"}},
		{"export key 0a1b2c3d /path", Directive{"export", "key", []string{"0a1b2c3d", "/path"}, nil, nil}},
		{"export key 0a1b2c3d file=/path", Directive{"export", "key", []string{"0a1b2c3d"}, []Attr{{"file", "=", "/path"}}, nil}},
		{`exp k 0A1B2C3D FILE="/my dir/k"`, Directive{"export", "key", []string{"0a1b2c3d"}, []Attr{{"file", "=", "/my dir/k"}}, nil}},
		{`exp k 0A1B2C3D "/my dir/key \"1\""`, Directive{"export", "key", []string{"0a1b2c3d", `/my dir/key "1"`}, nil, nil}},
		{"activate key 0a1b2c3d", Directive{"activate", "key", []string{"0a1b2c3d"}, nil, nil}},
		{"activate key 0a1b2c3d FORCE", Directive{"activate", "key", []string{"0a1b2c3d", "force"}, nil, nil}},
		{"a k 0a1b2c3d", Directive{"activate", "key", []string{"0a1b2c3d"}, nil, nil}},
		{"help", Directive{Command: "help"}},
		{"help set", Directive{Command: "help", Names: []string{"set"}}},
		{"help s s", Directive{Command: "help", Names: []string{"set", "server"}}},
		{"help hist", Directive{Command: "help", Names: []string{"history"}}},
		{"unset server token_ttl", Directive{Command: "unset", Object: "server", Show: []string{"token_ttl"}}},
		{"uns s MODE, heartbeat", Directive{Command: "unset", Object: "server", Show: []string{"mode", "heartbeat"}}},
		{"unset server @default key_grace", Directive{Command: "unset", Object: "server", Show: []string{"key_grace"}}},
		{"history", Directive{Command: "history"}},
		{"hi", Directive{Command: "history"}},
		{"list node @default", Directive{Command: "list", Object: "node"}},
		{"print node @DEFAULT", Directive{Command: "print", Object: "node"}},
		{"print server @default", Directive{Command: "print", Object: "server"}},
		{"list node n1@default,n2", Directive{"list", "node", []string{"n1", "n2"}, nil, nil}},
		{"delete node n1@default", Directive{"delete", "node", []string{"n1"}, nil, nil}},
		{"list node n12 Mom", Directive{"list", "node", []string{"n12"}, nil, []string{"Mom"}}},
		{"list node n1,n2 mom, STATE", Directive{"list", "node", []string{"n1", "n2"}, nil, []string{"Mom", "state"}}},
		{"l n @default last_seen", Directive{"list", "node", nil, nil, []string{"last_seen"}}},
		{"h", Directive{Command: "help"}},
		{"quit", Directive{Command: "quit"}},
		{"q", Directive{Command: "quit"}},
		{"EXIT", Directive{Command: "exit"}},
		{"", Directive{}},
		{"   \t ", Directive{}},
		{"# comment", Directive{}},
		{"#", Directive{}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) =\n  %#v\nwant\n  %#v", tc.in, got, tc.want)
		}
		again, err := Parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("Parse(String()) of %q: %q -> %#v, %v", tc.in, got.String(), again, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"delete node @default", `qmgr: syntax error at column 13: delete node needs node names: @default (every node) works only with list and print (usage: delete node NAME[,NAME...])`},
		{"list node n1@pbs1", `qmgr: bad value at column 11: node name "n1@pbs1": momgate-qmgr talks to one server: the only server name is @default`},
		{"list node n1,@default", `qmgr: bad value at column 14: node name "@default": @default alone means every node: do not mix it with names`},
		{"list node n1 Mom,Mom", `qmgr: bad value at column 18: attribute Mom given twice`},
		{"list node n1 Mom,", `qmgr: syntax error at column 18: expected an attribute name after ',', found end of line`},
		{"help frob", `qmgr: syntax error at column 6: unknown command "frob" (commands: activate, create, delete, exit, export, help, history, list, print, quit, rotate, set, unset)`},
		{"help create key", `qmgr: syntax error at column 13: help create takes an object: node, server`},
		{"help list node x", `qmgr: syntax error at column 16: unexpected "x" (usage: help [COMMAND [OBJECT]])`},
		{"help unset key", `qmgr: syntax error at column 12: help unset takes an object: server`},
		{"frob node", `qmgr: syntax error at column 1: unknown command "frob" (commands: activate, create, delete, exit, export, help, history, list, print, quit, rotate, set, unset)`},
		{"e key 0a1b2c3d /x", `qmgr: syntax error at column 1: ambiguous command "e": could be exit, export`},
		{"list nope", `qmgr: syntax error at column 6: unknown object "nope" (objects: key, node, server)`},
		{"= x", `qmgr: syntax error at column 1: expected a command, found '='`},
		{"create", `qmgr: syntax error at column 7: expected an object after create (node, server), found end of line`},
		{"create key", `qmgr: syntax error at column 8: no directive "create key": create works on node, server`},
		{"create node", `qmgr: syntax error at column 12: expected node name, found end of line (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node Mom=1.2.3.4", `qmgr: syntax error at column 13: expected node name, found "Mom" (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node n1", `qmgr: syntax error at column 15: create node needs Mom=ADDR|HOST (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node n1 Port=1", `qmgr: syntax error at column 22: create node needs Mom=ADDR|HOST (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node n1,n2 Mom=1.2.3.4", `qmgr: syntax error at column 15: create node takes a single node name (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node n1 n2 Mom=1.2.3.4", `qmgr: syntax error at column 16: unexpected "n2" (usage: create node NAME Mom=ADDR|HOST[,Port=N])`},
		{"create node n1 Mom=1.2.3.4,Foo=1", `qmgr: syntax error at column 28: unknown attribute "Foo" for create node (allowed: Mom, Port)`},
		{"create node n1 Mom+=1.2.3.4", `qmgr: syntax error at column 19: operator += is not supported for Mom (use =)`},
		{"create node n1 Mom-=1.2.3.4", `qmgr: syntax error at column 19: operator -= is not supported for Mom (use =)`},
		{"create node n1 Mom=1.2.3.4,Mom=1.2.3.5", `qmgr: syntax error at column 28: attribute Mom given twice`},
		{"create node n1 Mom=1.2.3.4,", `qmgr: syntax error at column 28: expected attribute name, found end of line`},
		{"create node n1 Mom=1.2.3.4,,Port=1", `qmgr: syntax error at column 28: expected attribute name, found ','`},
		{"create node n1 Mom=1.2.3.4 Port=1", `qmgr: syntax error at column 28: expected ',' or end of line, found "Port"`},
		{"create node n1 Mom 1.2.3.4", `qmgr: syntax error at column 20: expected '=' after Mom, found "1.2.3.4"`},
		{"create node n1 Mom=", `qmgr: syntax error at column 20: expected a value for Mom, found end of line`},
		{"create node n1 Mom=,Port=1", `qmgr: syntax error at column 20: expected a value for Mom, found ','`},
		{"create node n1 Mom=x_y", `qmgr: bad value at column 20: Mom "x_y": not an IPv4 or IPv6 address, nor a host name`},
		{"create node n1 Mom=1.2.3", `qmgr: bad value at column 20: Mom "1.2.3": not an IPv4 or IPv6 address, nor a host name (its last label "3" is all digits: a mistyped IP address?)`},
		{"create node n1 Mom=-cn01", `qmgr: bad value at column 20: Mom "-cn01": not an IPv4 or IPv6 address, nor a host name`},
		{"create node n1 Mom=fe80::1%eth0", `qmgr: bad value at column 20: Mom "fe80::1%eth0": fe80::1%eth0: not an address a node can hold: an IPv6 zone cannot be named in a PING`},
		{"create node n1 Mom=0.0.0.0", `qmgr: bad value at column 20: Mom "0.0.0.0": 0.0.0.0: not an address a node can hold: the unspecified address (a wildcard)`},
		{"create node n1 Mom=255.255.255.255", `qmgr: bad value at column 20: Mom "255.255.255.255": 255.255.255.255: not an address a node can hold: the limited broadcast address`},
		{"create node n1 Mom=1.2.3.4,Port=0", `qmgr: bad value at column 33: Port "0": want a port number 1..65535`},
		{"create node n1 Mom=1.2.3.4,Port=65536", `qmgr: bad value at column 33: Port "65536": want a port number 1..65535`},
		{"create node n1 Mom=1.2.3.4,Port=-1", `qmgr: bad value at column 33: Port "-1": want a port number 1..65535`},
		{"create node -n1 Mom=1.2.3.4", `qmgr: bad value at column 13: node name "-n1": want a letter or digit, then letters, digits, '.', '_' or '-', at most 64 in all`},
		{"create node " + strings.Repeat("n", 65) + " Mom=1.2.3.4", `qmgr: bad value at column 13: node name "` + strings.Repeat("n", 65) + `": want a letter or digit, then letters, digits, '.', '_' or '-', at most 64 in all`},
		{"delete node", `qmgr: syntax error at column 12: expected node name, found end of line (usage: delete node NAME[,NAME...])`},
		{"delete node n1,", `qmgr: syntax error at column 16: expected node name after ',', found end of line`},
		{"delete node n1,n1", `qmgr: bad value at column 16: node name n1 given twice`},
		{"delete node n1 Mom=1.2.3.4", `qmgr: syntax error at column 16: delete node takes no attributes (usage: delete node NAME[,NAME...])`},
		{"list node n1 n2", `qmgr: syntax error at column 14: unknown attribute "n2" for list node (attributes: Mom, Port, state, denied, comment, protocol, versions, upgraded, key_id, key_state, fingerprint, id, created, enrolled, last_seen, sealed, session, session_key_age; names are joined with ',')`},
		{"set server", `qmgr: syntax error at column 11: set server needs ATTR=VALUE (allowed: mode, key_distribution, token_ttl, freshness, heartbeat, key_grace, im_security)`},
		{"set server mode=fast", `qmgr: bad value at column 17: mode "fast": want one of legacy, compat, ping`},
		{"set server token_ttl=soon", `qmgr: bad value at column 22: token_ttl "soon": want a duration such as 90s, 15m or 1h`},
		{"set server token_ttl=-1h", `qmgr: bad value at column 22: token_ttl "-1h": want a duration such as 90s, 15m or 1h`},
		{"set server Mom=1.2.3.4", `qmgr: syntax error at column 12: unknown attribute "Mom" for set server (allowed: mode, key_distribution, token_ttl, freshness, heartbeat, key_grace, im_security)`},
		{"set server mode compat", `qmgr: syntax error at column 17: expected '=' after mode, found "compat"`},
		{"set server s1 mode=ping", `qmgr: syntax error at column 15: unknown attribute "mode" for set server (allowed: standby); mode is an attribute of set server without a name (usage: set server ATTR=VALUE[,...])`},
		{"set server s2", `qmgr: syntax error at column 14: set server s2 needs standby=true|false (usage: set server NAME standby=true|false)`},
		{"set server mode", `qmgr: syntax error at column 16: set server mode needs standby=true|false (usage: set server NAME standby=true|false; mode is also a server attribute: set server mode=VALUE)`},
		{"set server s2 standby=maybe", `qmgr: bad value at column 23: standby "maybe": want one of true, false`},
		{"set server s2 standby=", `qmgr: syntax error at column 23: expected a value for standby, found end of line`},
		{"set server s2,s3 standby=true", `qmgr: syntax error at column 14: set server takes a single member name (usage: set server NAME standby=true|false)`},
		{"set server s2 s3 standby=true", `qmgr: syntax error at column 15: unexpected "s3" (usage: set server NAME standby=true|false)`},
		{"set server s2 standby=true,standby=false", `qmgr: syntax error at column 28: attribute standby given twice`},
		{"set server -s2 standby=true", `qmgr: bad value at column 12: member name "-s2": want a letter or digit, then letters, digits, '.', '_' or '-', at most 64 in all`},
		{"set server s2@pbs1 standby=true", `qmgr: bad value at column 12: member name "s2@pbs1": momgate-qmgr talks to one server: the only server name is @default`},
		{"set server standby=true", `qmgr: syntax error at column 12: unknown attribute "standby" for set server (allowed: mode, key_distribution, token_ttl, freshness, heartbeat, key_grace, im_security)`},
		{"set server 1mode=ping", `qmgr: syntax error at column 12: expected attribute name, found "1mode"`},
		{"set node n1", `qmgr: syntax error at column 12: set node needs ATTR=VALUE (allowed: Mom, protocol, upgraded, sealed)`},
		{"set node n1 protocol=v2", `qmgr: bad value at column 22: protocol "v2": want one of legacy`},
		{"set node n1 state=up", `qmgr: syntax error at column 13: unknown attribute "state" for set node (allowed: Mom, protocol, upgraded, sealed)`},
		{"unset server", `qmgr: syntax error at column 13: unset server needs ATTR (attributes: mode, key_distribution, token_ttl, freshness, heartbeat, key_grace, im_security)`},
		{"unset server mode=ping", `qmgr: syntax error at column 14: unset server takes attribute names, not ATTR=VALUE (usage: unset server ATTR[,ATTR...])`},
		{"unset server frob", `qmgr: syntax error at column 14: unknown attribute "frob" for unset server (attributes: mode, key_distribution, token_ttl, freshness, heartbeat, key_grace, im_security; names are joined with ',')`},
		{"unset server mode,mode", `qmgr: bad value at column 19: attribute mode given twice`},
		{"unset node n1 Mom", `qmgr: syntax error at column 7: no directive "unset node": unset works on server`},
		{"export key 0a1b2c3d", `qmgr: syntax error at column 20: export key needs file=PATH (usage: export key ID file=PATH)`},
		{"export key 0a1b2c3d /a file=/b", `qmgr: syntax error at column 31: export key takes one file: give file=PATH or FILE, not both`},
		{`export key 0a1b2c3d file=""`, `qmgr: bad value at column 26: file "": empty file name`},
		{"export key 0a1b2c3d mode=0600", `qmgr: syntax error at column 21: unknown attribute "mode" for export key (allowed: file)`},
		{`export key 0a1b2c3d ""`, `qmgr: bad value at column 21: file "": empty file name`},
		{"activate key xyz", `qmgr: bad value at column 14: key id "xyz": want 8 hex digits, as list key shows`},
		{"activate key 0a1b2c3d 0a1b2c3e", `qmgr: bad value at column 23: force "0a1b2c3e": want "force" or nothing`},
		{"activate key 0a1b2c3d force extra", `qmgr: syntax error at column 29: unexpected "extra" (usage: activate key ID [force])`},
		{"rotate key now", `qmgr: syntax error at column 12: unexpected "now" (usage: rotate key)`},
		{"help me", `qmgr: syntax error at column 6: unknown command "me" (commands: activate, create, delete, exit, export, help, history, list, print, quit, rotate, set, unset)`},
		{"quit now", `qmgr: syntax error at column 6: quit takes no arguments`},
		{`set server mode="compat`, `qmgr: syntax error at column 17: unterminated quoted string`},
		{`set server mode="compat\`, `qmgr: syntax error at column 17: unterminated quoted string`},
		{`set server mode="a\qb"`, `qmgr: syntax error at column 19: invalid escape \q in quoted string (only \" and \\)`},
		{"list node \x01", `qmgr: syntax error at column 11: control character U+0001`},
		{"set server mode=\"a\x1bb\"", `qmgr: syntax error at column 19: control character U+001B in quoted string`},
		{"list node n\xff", `qmgr: syntax error at column 12: invalid UTF-8`},
		{"list node ñ1", `qmgr: bad value at column 11: node name "ñ1": want a letter or digit, then letters, digits, '.', '_' or '-', at most 64 in all`},
		{"list node n1 \"n2\"x", `qmgr: syntax error at column 14: unknown attribute "n2" for list node (attributes: Mom, Port, state, denied, comment, protocol, versions, upgraded, key_id, key_state, fingerprint, id, created, enrolled, last_seen, sealed, session, session_key_age; names are joined with ',')`},
	} {
		_, err := Parse(tc.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want %s", tc.in, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("Parse(%q):\n  got  %s\n  want %s", tc.in, err, tc.want)
		}
		var pe *ParseError
		if !errorsAs(err, &pe) || pe.Col < 1 {
			t.Errorf("Parse(%q): not a *ParseError with a column: %#v", tc.in, err)
		}
	}
}

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"", `""`},
		{"a b", `"a b"`},
		{"a,b", `"a,b"`},
		{"a=b", `"a=b"`},
		{"a+=b", `"a+=b"`},
		{"a+", "a+"},
		{"#x", `"#x"`},
		{"x#", "x#"},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{`back\slash`, `back\slash`},
		{"tab\there", "\"tab\there\""},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.in, got, tc.want)
		}
		line := "set server mode=" + Quote(tc.in)
		toks, err := lex(line)
		if err != nil || len(toks) != 6 || toks[4].text != tc.in {
			t.Errorf("Quote(%q) does not lex back: %v %+v", tc.in, err, toks)
		}
	}
}

func TestHelpListsEveryDirective(t *testing.T) {
	h := helpText()
	for _, e := range entries {
		if !strings.Contains(h, e.usage) {
			t.Errorf("help lacks %s", e.usage)
		}
		for _, a := range e.attrs {
			if !strings.Contains(h, a.name+"="+a.syntax) {
				t.Errorf("help lacks %s attribute %s", e.object, a.name)
			}
		}
	}
}

func TestTableConsistency(t *testing.T) {
	for _, e := range entries {
		key := e.command + " " + e.object
		if _, ok := commands[e.command]; !ok {
			t.Errorf("%s: command not in the command table", key)
		}
		if runners[key] == nil {
			t.Errorf("%s: no runner", key)
		}
		for i, od := range e.operands {
			if (od.list || od.optional) && i != len(e.operands)-1 {
				t.Errorf("%s: list or optional operand %s is not last", key, od.label)
			}
		}
		for _, a := range e.attrs {
			if !isAttrName(a.name) {
				t.Errorf("%s: bad attribute name %q", key, a.name)
			}
		}
	}
	for key := range runners {
		f := strings.Fields(key)
		if lookup(f[0], f[1]) == nil {
			t.Errorf("runner %s has no table entry", key)
		}
	}
}
