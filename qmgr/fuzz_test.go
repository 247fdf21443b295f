package qmgr

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics and that the canonical form of
// every directive it accepts parses back to the same directive.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"create node n1 Mom=127.0.0.2,Port=15003",
		"c n n1 Mom = ::1 , Port = 1",
		"set server mode=compat, token_ttl = \"1h\"",
		"export key 0a1b2c3d \"/a b/\\\"c\\\"\"",
		"delete node n1,n2,n3",
		"list node # comment",
		"set node n1 Mom+=1.2.3.4",
		"e k",
		"list node @default Mom,state",
		"list node n1@default last_seen",
		"help set server",
		"set server s2 standby=true",
		"s s s3 STANDBY = False",
		"set server mode standby=true",
		"set server @default key_grace=1s",
		"set server s2",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		d, err := Parse(line)
		if err != nil {
			var pe *ParseError
			if !errorsAs(err, &pe) || pe.Col < 1 {
				t.Fatalf("Parse(%q): error without a column: %v", line, err)
			}
			return
		}
		canon := d.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) = %#v; its String %q does not parse: %v", line, d, canon, err)
		}
		if !reflect.DeepEqual(again, d) {
			t.Fatalf("Parse(%q) = %#v\nString %q parses to %#v", line, d, canon, again)
		}
		if again.String() != canon {
			t.Fatalf("String not stable: %q then %q", canon, again.String())
		}
	})
}

// FuzzComplete checks that completion never panics and that every
// candidate completes the word typed: prefix with its last word replaced.
func FuzzComplete(f *testing.F) {
	for _, s := range []string{"", "l", "list node n", "set server mode=c", "list node n1 Mom,", "help s", `c n "x`, "# x", "set node n1 Mom=1.2.3.4,", "set server s", "set server s2 ", "set server s2 standby="} {
		f.Add(s)
	}
	c := &Completer{Exec: &fakeExec{srv: newFakeServer()}}
	f.Fuzz(func(t *testing.T, prefix string) {
		for _, line := range CompleteLine(context.Background(), Config{}, prefix) {
			_ = line
		}
		word, cands := c.Complete(context.Background(), prefix)
		if !strings.HasSuffix(prefix, word) {
			t.Fatalf("Complete(%q): word %q is not the end of the line", prefix, word)
		}
		for _, k := range cands {
			if !strings.HasPrefix(strings.ToLower(k.Word), strings.ToLower(word)) {
				t.Fatalf("Complete(%q): candidate %q does not start with %q", prefix, k.Word, word)
			}
		}
	})
}
