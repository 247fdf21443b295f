package config

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics; a file it accepts holds only known keys
// whose values pass their checks; every problem it reports has a line.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen = \"127.0.0.1:15001\"\nheartbeat = \"10s\"\n"))
	f.Add([]byte("[metrics]\nx = 1\n"))
	f.Add([]byte("listen = 5\nlog-level = \"loud\"\n"))
	s, err := FromFlags(testFlags(), []string{"config"}, testChecks)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vals, err := Parse("f", data, s)
		if err != nil {
			var ps *Problems
			if !errors.As(err, &ps) || len(ps.List) == 0 {
				t.Fatalf("error is not a non-empty *Problems: %v", err)
			}
			for _, p := range ps.List {
				if p.Line < 1 {
					t.Fatalf("problem without a line: %+v", p)
				}
			}
			return
		}
		for name, v := range vals {
			k, ok := s.Lookup(name)
			if !ok {
				t.Fatalf("accepted unknown key %q", name)
			}
			if v.Line < 1 {
				t.Fatalf("key %q without a line", name)
			}
			if k.Check != nil {
				if err := k.Check(v.Text, vals); err != nil {
					t.Fatalf("accepted %s = %q failing its check: %v", name, v.Text, err)
				}
			}
		}
	})
}
