package admin

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeRequest checks that the request decoder never panics, that
// what it accepts is well formed, and that re-encoding an accepted request
// decodes to the same request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"list_node"}`,
		`{"op":"create_node","args":{"name":"n1","mom":"127.0.0.2","port":15003}}`,
		`{"op":"set_server","args":{"name":"","attrs":[{"name":"mode","value":"compat"}]}}`,
		`{"op":"x","args":null}`,
		`{"op":"","args":{}}`,
		`{"op":"x"} {}`,
		`{"OP":"list_key","Args":[1,2,3]}`,
		`{"op":"x","extra":true}`,
		`[]`, `null`, `"op"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			if req.Op != "" || req.Args != nil {
				t.Fatalf("error %v with non-zero request %+v", err, req)
			}
			return
		}
		if !opRE.MatchString(req.Op) {
			t.Fatalf("accepted op %q", req.Op)
		}
		if req.Args != nil && !json.Valid(req.Args) {
			t.Fatalf("accepted invalid args %q", req.Args)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", req, err)
		}
		again, err := decodeRequest(enc)
		if err != nil {
			t.Fatalf("re-decode %s: %v", enc, err)
		}
		if again.Op != req.Op || !jsonEqual(again.Args, req.Args) {
			t.Fatalf("round trip: %+v != %+v", again, req)
		}
	})
}

// jsonEqual compares two JSON texts ignoring insignificant whitespace.
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// FuzzDecodeSetMemberArgs checks that set_member's decoder never panics,
// that what it accepts names a member and says standby, and that
// re-encoding an accepted value decodes to the same value.
func FuzzDecodeSetMemberArgs(f *testing.F) {
	for _, s := range []string{
		`{"name":"s2","standby":true}`,
		`{"name":"s2","standby":false}`,
		`{"name":"s2"}`,
		`{"standby":true}`,
		`{"name":"","standby":true}`,
		`{"name":"s2","standby":"true"}`,
		`{"name":"s2","standby":true,"extra":1}`,
		`{"name":"s2","standby":true} {}`,
		`{"name":"s2","standby":null}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := DecodeSetMemberArgs(raw)
		if err != nil {
			if a.Name != "" || a.Standby != nil {
				t.Fatalf("error %v with non-zero args %+v", err, a)
			}
			return
		}
		if a.Name == "" || a.Standby == nil {
			t.Fatalf("accepted %q as %+v", raw, a)
		}
		enc, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeSetMemberArgs(enc)
		if err != nil || again.Name != a.Name || *again.Standby != *a.Standby {
			t.Fatalf("round trip of %s: %+v, %v", enc, again, err)
		}
	})
}

// FuzzDecodeBackup checks that the backup decoder never panics, that what
// it accepts matches its checksums, and that re-encoding it decodes to
// the same backup.
func FuzzDecodeBackup(f *testing.F) {
	good := Backup{Format: BackupFormat, ServerID: "c3f9", Member: "s1", Index: 7, Members: []string{"s1", "s2"}, Nodes: 1,
		Identity: []byte(`{"x":1}`), Snapshot: []byte("sections")}
	good.Seal()
	enc, _ := json.Marshal(good)
	damaged := good
	damaged.Snapshot = []byte("sectionz")
	encDamaged, _ := json.Marshal(damaged)
	for _, s := range [][]byte{enc, encDamaged, []byte(`{"format":"momgate-backup/2"}`), []byte(`{}`), []byte(`null`), []byte(``),
		append(append([]byte{}, enc...), '{', '}'), bytes.Replace(enc, []byte(`"nodes"`), []byte(`"extra":1,"nodes"`), 1),
		bytes.Replace(enc, []byte(`"nodes"`), []byte(`"nodes":2,"nodes"`), 1), bytes.Replace(enc, []byte(`"nodes"`), []byte(`"NODES"`), 1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBackup(data)
		if err != nil {
			if b != nil {
				t.Fatalf("error %v with a backup", err)
			}
			return
		}
		if SHA256Hex(b.Snapshot) != b.SnapshotSHA256 || SHA256Hex(b.Identity) != b.IdentitySHA256 || b.Format != BackupFormat {
			t.Fatalf("accepted %+v", b)
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeBackup(again)
		if err != nil || !bytes.Equal(b2.Snapshot, b.Snapshot) || !bytes.Equal(b2.Identity, b.Identity) || b2.Index != b.Index {
			t.Fatalf("round trip: %v", err)
		}
	})
}
