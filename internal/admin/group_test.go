package admin

import (
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
