package mom

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/statecheck"
)

// TestDenyFileNotADenyList: a deny.json that is JSON but not a deny list
// (a bit flipped in a field name, an entry that does not parse) is found
// damaged by the inspection, so `state check` and the start agree: the
// list is held until the server's DenySet comes. Before, the check said
// "start, nothing lost" and the MOM then refused to start on it.
func TestDenyFileNotADenyList(t *testing.T) {
	for name, body := range map[string]string{
		"field_name_flipped": `{"foroat":1,"entries":[{"node":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","addr":""}]}`,
		"entry_node_bad":     `{"format":1,"entries":[{"node":"0d1c2a33-ee0a-48c6-98c3-70953e505beX","addr":""}]}`,
		"entry_addr_bad":     `{"format":1,"entries":[{"node":"","addr":"127.0.0.256"}]}`,
		"entry_key_bad":      `{"format":1,"entries":[{"node":"","addr":"127.0.0.5","keys":["zz"]}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, denyFile), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := checkDenyFile([]byte(body)); err == nil {
				t.Fatal("checkDenyFile accepted it")
			}
			st, err := daemon.CheckState(dir, statecheck.RoleMom)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Has(statecheck.StepDenyHold) {
				t.Fatalf("verdict %+v: want the deny list held", st.Verdict)
			}
			m := &Mom{cfg: Config{StateDir: dir}, log: testLogger(), deny: &ping.DenyList{}, base: &daemon.Base{State: st}}
			if err := m.loadDeny(); err != nil {
				t.Fatalf("the start refuses what the check recovers from: %v", err)
			}
		})
	}
	t.Run("whole", func(t *testing.T) {
		dir := t.TempDir()
		body := `{"format":1,"entries":[{"node":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","addr":""},{"node":"","addr":"127.0.0.5","keys":["55bfb2c4"]}]}`
		if err := os.WriteFile(filepath.Join(dir, denyFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := daemon.CheckState(dir, statecheck.RoleMom)
		if err != nil {
			t.Fatal(err)
		}
		if st.Has(statecheck.StepDenyHold) {
			t.Fatalf("a whole deny.json held: %+v", st.Verdict)
		}
	})
}

// FuzzCheckDenyFile: the inspection's decoding of deny.json never panics
// and agrees with the loader: what it accepts loads.
func FuzzCheckDenyFile(f *testing.F) {
	f.Add([]byte(`{"format":1,"entries":[]}`))
	f.Add([]byte(`{"format":1,"entries":[{"node":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","addr":""},{"node":"","addr":"127.0.0.5","keys":["55bfb2c4"]}]}`))
	f.Add([]byte(`{"foroat":1,"entries":[]}`))
	f.Add([]byte(`{"format":2,"entries":[]}`))
	f.Add([]byte(`{"format":1,"entries":[{"node":"","addr":"::1"}]}`))
	f.Add([]byte(`{"format":1,"entries":[{"node":"x","addr":""}]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkDenyFile(b) != nil {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, denyFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		m := &Mom{cfg: Config{StateDir: dir}, log: testLogger(), deny: &ping.DenyList{}, base: &daemon.Base{State: &daemon.State{}}}
		if err := m.loadDeny(); err != nil {
			t.Fatalf("checkDenyFile accepts what loadDeny refuses: %v", err)
		}
	})
}
