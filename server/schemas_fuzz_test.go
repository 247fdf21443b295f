package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statetest"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/strictjson"
)

// addInitSeeds seeds f with the files Init writes, and variants that are JSON
// but not what the loaders decode.
func addInitSeeds(f *testing.F, name string, extra ...string) {
	dir := filepath.Join(f.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		f.Fatal(err)
	}
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

// FuzzCheckStateFile: the inspection's decoding of state.json never
// panics, and what it accepts, loadState loads.
func FuzzCheckStateFile(f *testing.F) {
	addInitSeeds(f, stateFile,
		`{"format":1,"manifest":true,"id":"af224507-f018-444c-b5c1-19e3b8581ca6","attrs":{"mode":"ping","key_distribution":"auto","token_ttl":"1h0m0s","freshness":"5m0s","heartbeat":"10s","key_grace":"30s","im_security":"encrypt"},"nodes":[{"name":"n1","id":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","mom":"127.0.0.5","port":15002,"created":"2026-01-02T03:04:05Z"}],"tokens":[]}`,
		`{"format":1,"manifest":true,"id":"af224507-f018-444c-b5c1-19e3b8581ca6","attrs":{"mode":"ping","key_distribution":"auto","token_ttl":"1h0m0s","freshness":"5m0s","heartbeat":"10s","key_grace":"30s","im_security":"encrypt"},"nodes":[{"name":"n1","id":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","mom":"127.0.0.256","port":15002,"created":"2026-01-02T03:04:05Z"}],"tokens":[]}`,
		`{"format":1,"id":"not-a-uuid","attrs":{},"nodes":[],"tokens":[]}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkStateFile(b) != nil {
			return
		}
		if _, err := loadState(writeFuzzFile(t, stateFile, b)); err != nil {
			t.Fatalf("checkStateFile accepts what loadState refuses: %v", err)
		}
	})
}

// FuzzCheckKeyringFile: the inspection's decoding of keyring.json never
// panics, and what it accepts the start loads with an active key.
func FuzzCheckKeyringFile(f *testing.F) {
	addInitSeeds(f, keyringFile, `{"format":1,"keys":[]}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkKeyringFile(b) != nil {
			return
		}
		ring, err := keystore.LoadKeyring(filepath.Join(writeFuzzFile(t, keyringFile, b), keyringFile))
		if err != nil {
			t.Fatalf("checkKeyringFile accepts what LoadKeyring refuses: %v", err)
		}
		if err := requireActive(ring); err != nil {
			t.Fatalf("checkKeyringFile accepts a keyring the start refuses: %v", err)
		}
	})
}

// FuzzCheckIdentityFile: the inspection's decoding of identity.json never
// panics, and what it accepts the start loads.
func FuzzCheckIdentityFile(f *testing.F) {
	addInitSeeds(f, identityFile)
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkIdentityFile(b) != nil {
			return
		}
		if _, err := keystore.LoadIdentity(filepath.Join(writeFuzzFile(t, identityFile, b), identityFile)); err != nil {
			t.Fatalf("checkIdentityFile accepts what LoadIdentity refuses: %v", err)
		}
	})
}

// FuzzCheckRotationFile: the inspection's decoding of rotation.json never
// panics, and what it accepts loadRotation loads.
func FuzzCheckRotationFile(f *testing.F) {
	for _, s := range []string{
		`{"format":1,"phase":"idle","seq":0}`,
		`{"foroat":1,"phase":"idle","seq":0}`,
		`{"format":"1","phase":"idle","seq":0}`,
		`{"format":2,"phase":"idle","seq":0}`,
		`{"format":1,"phase":"resting","seq":0}`,
		`{"format":1,"phase":"grace","seq":3,"old_key":"d101651a","new_key":"zz"}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkRotationFile(b) != nil {
			return
		}
		if _, err := loadRotation(filepath.Join(writeFuzzFile(t, rotationFile, b), rotationFile)); err != nil {
			t.Fatalf("checkRotationFile accepts what loadRotation refuses: %v", err)
		}
	})
}

// FuzzCheckJournals: the inspection's replay of a journal's records over
// its snapshot never panics (the journal is chosen by which: state,
// rotation, deny; the records are a JSON array of journal records), and
// what it accepts of state.journal, the start's loading steps accept one
// by one.
func FuzzCheckJournals(f *testing.F) {
	state := `{"format":1,"manifest":true,"id":"af224507-f018-444c-b5c1-19e3b8581ca6","attrs":{"mode":"ping","key_distribution":"auto","token_ttl":"1h0m0s","freshness":"5m0s","heartbeat":"10s","key_grace":"30s","im_security":"encrypt"},"nodes":[],"tokens":[]}`
	node := `{"name":"n1","id":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","mom":"127.0.0.5","port":15002,"created":"2026-01-02T03:04:05Z"}`
	f.Add(uint8(0), []byte(state), []byte(`[{"kind":"node","key":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","value":`+node+`}]`))
	f.Add(uint8(0), []byte(state), []byte(`[{"kind":"node","key":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","value":{"foroat":1}}]`))
	f.Add(uint8(0), []byte(state), []byte(`[{"kind":"meta","key":"server","value":{"format":"1"}}]`))
	f.Add(uint8(0), []byte(state), []byte(`[{"kind":"node","key":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","deleted":true}]`))
	f.Add(uint8(1), []byte(`{"format":1,"phase":"idle","seq":0}`), []byte(`[{"kind":"rotation","key":"record","value":{"format":1,"phase":"idle","seq":1}}]`))
	f.Add(uint8(1), []byte(nil), []byte(`[{"kind":"behind","key":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","value":{}}]`))
	f.Add(uint8(1), []byte(`{"format":1,"phase":"idle","seq":0}`), []byte(`[{"kind":"rotation","key":"record","value":{"foroat":1}}]`))
	f.Add(uint8(2), []byte(nil), []byte(`[{"kind":"deny","key":"addr:127.0.0.9","value":{"foroat":1}}]`))
	f.Add(uint8(2), []byte(nil), []byte(`[]`))
	f.Fuzz(func(t *testing.T, which uint8, snap, records []byte) {
		var recs []store.JournalRecord
		if json.Unmarshal(records, &recs) != nil {
			return
		}
		if len(snap) == 0 {
			snap = nil
		}
		switch which % 3 {
		case 0:
			c, err := checkStateJournal(snap, recs)
			if err != nil || snap == nil {
				return
			}
			var p persisted
			if err := strictjson.Decode(snap, &p); err != nil {
				t.Fatalf("checkStateJournal accepts a snapshot that does not decode: %v", err)
			}
			if err := checkStateFormat(p); err != nil {
				t.Fatalf("checkStateJournal accepts a snapshot loadState refuses: %v", err)
			}
			p, err = replayJournal(p, recs)
			if err != nil {
				t.Fatalf("checkStateJournal accepts what replayJournal refuses: %v", err)
			}
			reg, err := newRegistry(p)
			if err != nil {
				t.Fatalf("checkStateJournal accepts a registry newRegistry refuses: %v", err)
			}
			if len(c.reg.byName) != len(reg.byName) || !reflect.DeepEqual(c.p, p) {
				t.Fatalf("checkStateJournal built another state than the start's own load: %d nodes, want %d", len(c.reg.byName), len(reg.byName))
			}
		case 1:
			_, _ = checkRotationJournal(snap, recs)
		case 2:
			_ = checkDenyJournal(snap, recs)
		}
	})
}
