package server

import (
	"errors"
	"testing"
)

// FuzzDecodeDenyList: the deny.json decoder never panics, and every error
// wraps errBadDenyList. Seeds also live in testdata/fuzz/FuzzDecodeDenyList/.
func FuzzDecodeDenyList(f *testing.F) {
	f.Add([]byte(`{"format":1,"entries":[]}`))
	f.Add([]byte(`{"format":1,"entries":[{"node":"a0000000-0000-0000-0000-000000000001","addr":"127.0.0.4"},{"addr":"::1"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := decodeDenyList(data)
		if err != nil {
			if !errors.Is(err, errBadDenyList) {
				t.Fatalf("error does not wrap errBadDenyList: %v", err)
			}
			return
		}
		for i, e := range es {
			if e.Node == [16]byte{} && e.Addr == [16]byte{} {
				t.Fatalf("entry %d is empty", i)
			}
		}
	})
}

func TestDecodeDenyList(t *testing.T) {
	es, err := decodeDenyList([]byte(`{"format":1,"entries":[{"node":"a0000000-0000-0000-0000-000000000001"},{"addr":"::ffff:127.0.0.4"}]}`))
	if err != nil || len(es) != 2 || es[1].Addr.String() != "127.0.0.4" {
		t.Fatalf("%v %v", es, err)
	}
	for _, bad := range []string{``, `{"format":2,"entries":[]}`, `{"format":1,"entries":[{}]}`, `{"format":1,"entries":[{"addr":"x"}]}`,
		`{"format":1,"entries":[{"node":"x"}]}`, `{"format":1,"entries":[],"more":1}`, `{"format":1,"entries":[]} {}`,
		`{"format":1,"entries":[{"addr":"fe80::1%eth0"}]}`} {
		if _, err := decodeDenyList([]byte(bad)); !errors.Is(err, errBadDenyList) {
			t.Errorf("decodeDenyList(%q) = %v", bad, err)
		}
	}
}
