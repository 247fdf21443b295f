package mom

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statetest"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/statecheck"
)

// testMomConfig is a MOM on loopback that New does not connect.
func testMomConfig(dir string) Config {
	return Config{StateDir: dir, Server: "127.0.0.1:1", Listen: "127.0.0.2:0", Log: testLogger()}
}

// enrolledMomDir is the state directory of an enrolled MOM a start has
// completed on: identity, keyring and enrollment as an enrollment writes
// them, the files of a first start and the manifest.
func enrolledMomDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "m")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A first start before the enrollment (a legacy-only MOM) writes
	// the identity and the files of a first start; the enrollment then
	// writes the keyring and mom.json and lists them in the manifest
	// (control.go).
	cfg := testMomConfig(dir)
	cfg.Protocol = ProtocolLegacy
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.base.Close()
	srv, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.NewKey(rand.Reader, time.Now(), func(keys.KeyID) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := keystore.SaveKeyring(filepath.Join(dir, keyringFile), ring); err != nil {
		t.Fatal(err)
	}
	e := &enrollment{Format: 1, NodeID: uuid.NewString(), Name: "n1", ServerID: uuid.NewString(), ServerKey: encodeB64(srv.Public[:])}
	if err := saveEnrollment(dir, e); err != nil {
		t.Fatal(err)
	}
	if err := store.SaveManifest(dir, statecheck.RoleMom.String(), statecheck.Files(statecheck.RoleMom, true)); err != nil {
		t.Fatal(err)
	}
	m, err = New(testMomConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	m.base.Close()
	st, err := daemon.CheckState(dir, statecheck.RoleMom)
	if err != nil || st.Verdict.Action != statecheck.Start {
		t.Fatalf("the started directory checks %+v, %v", st, err)
	}
	return dir
}

// TestStateCheckAgreesWithStart: for every JSON state file of the MOM, a
// variant that is JSON but not what the loader decodes is judged by
// `state check` as the start then acts: the start refuses exactly when
// the check does, and a check that recovers is a start that succeeds.
func TestStateCheckAgreesWithStart(t *testing.T) {
	base := enrolledMomDir(t)
	for _, name := range statecheck.Files(statecheck.RoleMom, true) {
		if filepath.Ext(name) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			t.Fatal(err)
		}
		variants, err := statetest.Variants(data)
		if err != nil {
			t.Fatal(err)
		}
		for variant, body := range variants {
			t.Run(name+"/"+variant, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "m")
				copyDir(t, base, dir)
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
					t.Fatal(err)
				}
				st, checkErr := daemon.CheckState(dir, statecheck.RoleMom)
				check := statecheck.Refuse
				if checkErr == nil {
					check = st.Verdict.Action
				}
				m, startErr := New(testMomConfig(dir))
				if startErr == nil {
					m.base.Close()
				}
				t.Logf("check: %v (%v); start: %v", check, checkErr, startErr)
				switch {
				case check == statecheck.Start:
					t.Errorf("the check finds nothing wrong with a %s that its loader does not decode (start: %v)", name, startErr)
				case (check == statecheck.Refuse) != (startErr != nil):
					t.Errorf("the check says %v (%v), the start says %v", check, checkErr, startErr)
				case check == statecheck.Recover && !slices.ContainsFunc(st.Verdict.Recovered, func(e statecheck.Entry) bool {
					return e.File == name && e.Problem == statecheck.Damaged
				}):
					t.Errorf("recovered, but not from a damaged %s: %+v", name, st.Verdict.Recovered)
				}
			})
		}
	}
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
