package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// TestDecodeSetMemberArgs: a name and standby are required; unknown
// fields, wrong types and trailing data are refused with ErrSetMemberArgs.
func TestDecodeSetMemberArgs(t *testing.T) {
	for in, want := range map[string]bool{`{"name":"s2","standby":true}`: true, ` {"standby":false,"name":"s3"} `: false} {
		a, err := DecodeSetMemberArgs([]byte(in))
		if err != nil || a.Standby == nil || *a.Standby != want {
			t.Errorf("%s: %+v, %v", in, a, err)
		}
	}
	for _, in := range []string{`{"name":"s2"}`, `{"standby":true}`, `{"name":"","standby":true}`, `{"name":"s2","standby":"true"}`,
		`{"name":"s2","standby":true,"force":true}`, `{"name":"s2","standby":true}x`, `{"name":"s2","standby":null}`, ``, `null`} {
		if _, err := DecodeSetMemberArgs([]byte(in)); !errors.Is(err, ErrSetMemberArgs) {
			t.Errorf("%q: %v, want ErrSetMemberArgs", in, err)
		}
	}
}

// TestDecodeBackup: a sealed backup decodes; a damaged one, another
// format, an unknown field, a field twice or named in another case and
// trailing data are refused with ErrBadBackup.
func TestDecodeBackup(t *testing.T) {
	b := Backup{Format: BackupFormat, Identity: []byte("id"), Snapshot: []byte("snap")}
	b.Seal()
	enc, _ := json.Marshal(b)
	if got, err := DecodeBackup(enc); err != nil || string(got.Snapshot) != "snap" {
		t.Fatalf("%v %+v", err, got)
	}
	bad := map[string][]byte{
		"damaged":  bytes.Replace(enc, []byte(`"c25hcA=="`), []byte(`"c25icA=="`), 1),
		"format":   bytes.Replace(enc, []byte(BackupFormat), []byte("momgate-backup/9"), 1),
		"field":    bytes.Replace(enc, []byte(`{`), []byte(`{"x":1,`), 1),
		"trailing": append(append([]byte{}, enc...), []byte(" {}")...),
		"empty":    []byte(`{"format":"momgate-backup/1"}`),
		// A second identity after the first, with its own checksum:
		// encoding/json would take it, a reader of the file the first.
		"twice": append(append([]byte{}, enc[:len(enc)-1]...), []byte(`,"identity":"b3RoZXI=","identity_sha256":"`+SHA256Hex([]byte("other"))+`"}`)...),
		"case":  bytes.Replace(enc, []byte(`"snapshot"`), []byte(`"SNAPSHOT"`), 1),
	}
	for what, data := range bad {
		if _, err := DecodeBackup(data); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: %v, want ErrBadBackup", what, err)
		}
	}
}
