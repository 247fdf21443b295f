package mom

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statetest"
)

// addMomSeeds seeds f with name as a started enrolled MOM holds it (from
// a directory built once), variants that are JSON but not what the
// loader decodes, and extra.
func addMomSeeds(f *testing.F, name string, extra ...string) {
	dir := enrolledMomDir(f)
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range statetest.Seeds(b, extra...) {
		f.Add(seed)
	}
}

// writeFuzzFile writes b as name in a new private directory.
func writeFuzzFile(t *testing.T, name string, b []byte) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// loaderMom is a MOM with what its loaders need, on dir, with nothing
// lost.
func loaderMom(dir string) *Mom {
	return &Mom{cfg: Config{StateDir: dir}, log: testLogger(), base: &daemon.Base{State: &daemon.State{}}}
}

// FuzzCheckEnrollmentFile: the inspection's decoding of mom.json never
// panics, and what it accepts loadEnrollment loads.
func FuzzCheckEnrollmentFile(f *testing.F) {
	addMomSeeds(f, momFile,
		`{"format":1,"node_id":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","name":"n1","server_id":"x","server_key":"AAAA"}`,
		`{"format":1,"node_id":"0d1c2a33","name":"n1","server_id":"x","server_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkEnrollmentFile(b) != nil {
			return
		}
		if e, err := loadEnrollment(writeFuzzFile(t, momFile, b)); err != nil || e == nil {
			t.Fatalf("checkEnrollmentFile accepts what loadEnrollment refuses: %v", err)
		}
	})
}

// FuzzCheckLegacyFile: the inspection's decoding of legacy.json never
// panics, and what it accepts initLegacy loads.
func FuzzCheckLegacyFile(f *testing.F) {
	addMomSeeds(f, legacyFile,
		`{"format":1,"server_mode":"ping","upgraded":[{"node":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","addr":"127.0.0.5"}]}`,
		`{"format":1,"server_mode":"fast","upgraded":[]}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkLegacyFile(b) != nil {
			return
		}
		if err := loaderMom(writeFuzzFile(t, legacyFile, b)).initLegacy(); err != nil {
			t.Fatalf("checkLegacyFile accepts what initLegacy refuses: %v", err)
		}
	})
}

// FuzzCheckJobsFile: the inspection's decoding of jobs.json never panics,
// and what it accepts loadJobs loads.
func FuzzCheckJobsFile(f *testing.F) {
	addMomSeeds(f, jobsFile, string(jobsDoc(rec("j1", "n2", "n3"))), string(jobsDoc(rec("j1", "n2"), rec("j1", "n3"))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJobsFile(b) != nil {
			return
		}
		if err := loaderMom(writeFuzzFile(t, jobsFile, b)).loadJobs(); err != nil {
			t.Fatalf("checkJobsFile accepts what loadJobs refuses: %v", err)
		}
	})
}

// FuzzCheckSessionsFile: the inspection's decoding of sessions.json never
// panics, and what it accepts loadSessions loads.
func FuzzCheckSessionsFile(f *testing.F) {
	for _, s := range sessionsSeeds() {
		f.Add(s.Args[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkSessionsFile(b) != nil {
			return
		}
		if err := loaderMom(writeFuzzFile(t, sessionsFile, b)).loadSessions(); err != nil {
			t.Fatalf("checkSessionsFile accepts what loadSessions refuses: %v", err)
		}
	})
}

// FuzzCheckKeyFiles: the inspection's decodings of identity.json and
// keyring.json never panic, and what they accept the start loads.
func FuzzCheckKeyFiles(f *testing.F) {
	dir := enrolledMomDir(f)
	for _, name := range []string{identityFile, keyringFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(name == keyringFile, b)
		f.Add(name == keyringFile, bytes.Replace(b, []byte(`"format"`), []byte(`"foroat"`), 1))
		f.Add(name == keyringFile, bytes.Replace(b, []byte(`"format": 1`), []byte(`"format": 2`), 1))
	}
	f.Add(true, []byte(`{"format":1,"keys":[]}`))
	f.Fuzz(func(t *testing.T, ring bool, b []byte) {
		if ring {
			if checkKeyringFile(b) != nil {
				return
			}
			if _, err := keystore.LoadKeyring(filepath.Join(writeFuzzFile(t, keyringFile, b), keyringFile)); err != nil {
				t.Fatalf("checkKeyringFile accepts what LoadKeyring refuses: %v", err)
			}
			return
		}
		if checkIdentityFile(b) != nil {
			return
		}
		if _, err := keystore.LoadIdentity(filepath.Join(writeFuzzFile(t, identityFile, b), identityFile)); err != nil {
			t.Fatalf("checkIdentityFile accepts what LoadIdentity refuses: %v", err)
		}
	})
}
