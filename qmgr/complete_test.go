package qmgr

import (
	"context"
	"strings"
	"testing"
)

func completions(t *testing.T, c *Completer, prefix string) string {
	t.Helper()
	_, cands := c.Complete(context.Background(), prefix)
	var parts []string
	for _, k := range cands {
		parts = append(parts, k.Word+k.Suffix)
	}
	return strings.Join(parts, "|")
}

func TestComplete(t *testing.T) {
	fx := &fakeExec{srv: newFakeServer()}
	c := &Completer{Exec: fx}
	for _, tc := range []struct{ prefix, want string }{
		{"", "activate |create |delete |exit |export |help |history |list |print |quit |rotate |set |unset "},
		{"cr", "create "},
		{"  L", "list "},
		{"u", "unset "},
		{"unset ", "server "},
		{"unset server ", "freshness |heartbeat |im_security |key_distribution |key_grace |mode |token_ttl "},
		{"unset server mode,t", "token_ttl "},
		{"list ", "key |node |server "},
		{"create ", "node |server "},
		{"c n", "node "},
		{"list node ", "@default |n1 |n2 "},
		{"list node n", "n1 |n2 "},
		{"list node n1,", "n1 |n2 "},
		{"list node n1, n", "n1 |n2 "},
		{"list node n1 ", "Mom |Port |comment |created |denied |enrolled |fingerprint |id |key_id |key_state |last_seen |protocol |sealed |session |session_key_age |state |upgraded |versions "},
		{"list node @default la", "last_seen "},
		{"list node n1 Mom,k", "key_id |key_state "},
		{"list node n1 Mom ", ""},
		{"delete node ", "n1 |n2 "},
		{"set node n1 ", "Mom=|protocol=|sealed=|upgraded="},
		{"set node n1 Mom=10.0.0.1,", "Mom=|protocol=|sealed=|upgraded="},
		{"set node n1 protocol=", "legacy"},
		{"set server ", "freshness=|heartbeat=|im_security=|key_distribution=|key_grace=|mode=|token_ttl="},
		{"s s mode=c", "compat"},
		{"set server mode = ", "compat|legacy|ping"},
		{"set server mode=compat ", ""},
		{"create node n9 ", "Mom=|Port="},
		{"export key ", "0a1b2c3d "},
		{"export key 0a1b2c3d ", "file="},
		{"activate key 0", "0a1b2c3d "},
		{"help ", "activate |create |delete |exit |export |help |history |list |print |quit |rotate |set |unset "},
		{"help set ", "node |server "},
		{"quit ", ""},
		{"frob ", ""},
		{`set server mode="c`, ""},
		{"list node # n", ""},
	} {
		if got := completions(t, c, tc.prefix); got != tc.want {
			t.Errorf("Complete(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	// Node names are fetched once, until Forget.
	n := 0
	for _, cl := range fx.calls {
		if cl.op == "list_node" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("list_node called %d times, want 1", n)
	}
	n3 := fx.srv.nodes["n1"]
	n3.Name = "n3"
	fx.srv.nodes["n3"] = n3
	if got := completions(t, c, "delete node n"); got != "n1 |n2 " {
		t.Errorf("before Forget: %q", got)
	}
	c.Forget()
	if got := completions(t, c, "delete node n"); got != "n1 |n2 |n3 " {
		t.Errorf("after Forget: %q", got)
	}
	// Without a server there are no names, and no error.
	if got := completions(t, &Completer{}, "delete node "); got != "" {
		t.Errorf("no server: %q", got)
	}
}
