package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/statetest"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
)

// startedServerDir is a server state directory a start has completed on
// (manifest, journals, every file of statecheck.Files).
func startedServerDir(t *testing.T) string {
	t.Helper()
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	denyFixture(s, 0, 2, clock.Now())
	s.closeUnstarted()
	if st, err := daemon.CheckState(dir, statecheck.RoleServer); err != nil || st.Verdict.Action != statecheck.Start {
		t.Fatalf("the started directory checks %+v, %v", st, err)
	}
	return dir
}

// TestStateCheckAgreesWithStart: for every JSON state file of the server,
// a variant that is JSON but not what the loader decodes is judged by
// `state check` as the start then acts: the start refuses exactly when
// the check does, and a check that recovers is a start that succeeds.
func TestStateCheckAgreesWithStart(t *testing.T) {
	base := startedServerDir(t)
	for _, name := range statecheck.Files(statecheck.RoleServer, true) {
		if filepath.Ext(name) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(base, name))
		if err != nil {
			t.Fatal(err)
		}
		journal := map[string]string{stateFile: journalFile, rotationFile: rotationJournalFile, denyFile: denyJournalFile}[name]
		variants, err := statetest.Variants(data)
		if err != nil {
			t.Fatal(err)
		}
		if name == keyringFile {
			variants["no_active_key"] = []byte(`{"format":1,"keys":[]}`)
		}
		for variant, body := range variants {
			for _, folded := range []bool{false, true} {
				if folded && journal == "" {
					continue
				}
				sub := name + "/" + variant
				if folded {
					sub += "/folded"
				}
				t.Run(sub, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "s")
					copyDir(t, base, dir)
					if folded {
						// Written by a fold: the journal follows it, so
						// only its decoding can tell it is not the file.
						foldInto(t, filepath.Join(dir, journal), filepath.Join(dir, name), body)
					} else if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
						t.Fatal(err)
					}
					st, checkErr := daemon.CheckState(dir, statecheck.RoleServer)
					check := statecheck.Refuse
					if checkErr == nil {
						check = st.Verdict.Action
					}
					s, startErr := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
					if startErr == nil {
						s.closeUnstarted()
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
}

// foldInto writes body as the snapshot of the journal at jpath, with the
// journal's header following it.
func foldInto(t *testing.T, jpath, snap string, body []byte) {
	t.Helper()
	js, err := store.ReadStateJournal(jpath, store.JournalOptions{Snapshot: snap, Expect: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := js.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Fold(snap, body, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
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

// TestJournalCheckAgreesWithStart: a journal line whose checksum holds
// but whose record is not what the replay decodes (an unknown field, a
// wrong type) makes the journal damaged, so `state check` refuses as the
// start does, naming the journal. Before, the check said "start" and the
// start then refused on the replay.
func TestJournalCheckAgreesWithStart(t *testing.T) {
	base := startedServerDir(t)
	for _, c := range []struct {
		journal, snapshot string
		kind, key         string
	}{
		{journalFile, stateFile, kindNode, "0d1c2a33-ee0a-48c6-98c3-70953e505bed"},
		{journalFile, stateFile, kindMeta, ""},
		{rotationJournalFile, rotationFile, kindRotation, rotationRecordKey},
		{denyJournalFile, denyFile, kindDeny, "addr:127.0.0.9"},
	} {
		for variant, value := range map[string]string{
			"unknown_field": `{"foroat":1}`,
			"wrong_type":    `{"format":"1"}`,
		} {
			t.Run(c.journal+"/"+c.kind+"/"+variant, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "s")
				copyDir(t, base, dir)
				js, err := store.ReadStateJournal(filepath.Join(dir, c.journal), store.JournalOptions{Snapshot: filepath.Join(dir, c.snapshot), Expect: true})
				if err != nil {
					t.Fatal(err)
				}
				j, err := js.Open()
				if err != nil {
					t.Fatal(err)
				}
				err = j.Append([]store.JournalRecord{{Kind: c.kind, Key: c.key, Value: json.RawMessage(value)}})
				j.Close()
				if err != nil {
					t.Fatal(err)
				}
				_, checkErr := daemon.CheckState(dir, statecheck.RoleServer)
				s, startErr := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
				if startErr == nil {
					s.closeUnstarted()
				}
				t.Logf("check: %v; start: %v", checkErr, startErr)
				if checkErr == nil || startErr == nil || !strings.Contains(checkErr.Error(), c.journal+": damaged") {
					t.Fatalf("want both to refuse, naming %s damaged: check %v, start %v", c.journal, checkErr, startErr)
				}
			})
		}
	}
}

// TestRotationJournalOldFormat: a rotation.journal of format 1 (no
// header) is judged upgraded, nothing lost, so the start replays it
// (before, it dropped the record silently: neither the record nor a new
// rotation), and one whose record does not decode is damaged: both the
// check and the start refuse.
func TestRotationJournalOldFormat(t *testing.T) {
	for name, c := range map[string]struct {
		value  string
		refuse bool
	}{
		"whole":         {`{"format":1,"phase":"idle","seq":7}`, false},
		"unknown_field": {`{"foroat":1}`, true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := startedServerDir(t)
			// A manifest of before rotation.journal, which does not
			// list it.
			files := slices.DeleteFunc(statecheck.Files(statecheck.RoleServer, true), func(f string) bool { return f == rotationJournalFile })
			if err := store.SaveManifest(dir, statecheck.RoleServer.String(), files); err != nil {
				t.Fatal(err)
			}
			line, err := store.AppendJournalLine(nil, store.JournalRecord{Kind: kindRotation, Key: rotationRecordKey, Value: json.RawMessage(c.value)})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, rotationJournalFile), line, 0o600); err != nil {
				t.Fatal(err)
			}
			st, checkErr := daemon.CheckState(dir, statecheck.RoleServer)
			s, startErr := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
			if c.refuse {
				if startErr == nil {
					s.closeUnstarted()
				}
				if checkErr == nil || startErr == nil || !strings.Contains(checkErr.Error(), rotationJournalFile+": damaged") {
					t.Fatalf("want both to refuse, naming %s damaged: check %v, start %v", rotationJournalFile, checkErr, startErr)
				}
				return
			}
			if checkErr != nil || st.Verdict.Action != statecheck.Start || len(st.Verdict.Upgraded) != 1 {
				t.Fatalf("check %+v, %v: want start, rotation.journal upgraded", st.Verdict, checkErr)
			}
			if startErr != nil {
				t.Fatal(startErr)
			}
			defer s.closeUnstarted()
			if seq := s.rot.store.record().Seq; seq != 7 {
				t.Fatalf("record seq %d after the upgrade, want 7 (the journal's)", seq)
			}
		})
	}
}

// TestStateRecordNotParsing: a state.json whose node record does not
// parse (an address that is not one), written by a fold so that its
// journal follows it, is refused by the check as by the start, naming
// state.json damaged; before, the check said "start".
func TestStateRecordNotParsing(t *testing.T) {
	dir := startedServerDir(t)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	top["nodes"] = json.RawMessage(`[{"name":"n1","id":"0d1c2a33-ee0a-48c6-98c3-70953e505bed","mom":"127.0.0.256","port":15002,"created":"2026-01-02T03:04:05Z"}]`)
	body, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	foldInto(t, filepath.Join(dir, journalFile), filepath.Join(dir, stateFile), body)
	_, checkErr := daemon.CheckState(dir, statecheck.RoleServer)
	s, startErr := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if startErr == nil {
		s.closeUnstarted()
	}
	t.Logf("check: %v; start: %v", checkErr, startErr)
	if checkErr == nil || startErr == nil || !strings.Contains(checkErr.Error(), stateFile+": damaged") {
		t.Fatalf("want both to refuse: check %v, start %v", checkErr, startErr)
	}
}

// The inspection's replay of state.json and its journal is the start's:
// a start takes the registry it built (instead of decoding and replaying
// again) and the State no longer holds it once the server runs.
func TestStartTakesTheInspectedRegistry(t *testing.T) {
	dir := offlineDir(t, 50)
	st, err := daemon.CheckState(dir, statecheck.RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := st.In.Journal.Checked.(*checkedState)
	if !ok || len(c.reg.byName) != 50 {
		t.Fatalf("inspection built %#v, want the registry of 50 nodes", st.In.Journal.Checked)
	}
	s := openServer(t, dir, nil)
	defer s.closeUnstarted()
	if got := len(s.reg.byName); got != 50 {
		t.Fatalf("server opened with %d nodes, want 50", got)
	}
	if s.base.State.In.Journal.Checked != nil || s.base.State.In.Journal.Records != nil {
		t.Fatal("the State still holds the inspected registry or the journal's records after the start took them")
	}
}

// A keyring restored alone beside a rotation record in grace for a newer
// key: the start refuses (the record and the keyring disagree), and so
// does state check, naming keyring.json, instead of saying start.
func TestStateCheckRingAgainstRotation(t *testing.T) {
	dir := offlineDir(t, 2)
	old, err := os.ReadFile(filepath.Join(dir, keyringFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := openServer(t, dir, nil)
	if _, err := srv.rot.rotate("test"); err != nil {
		t.Fatal(err)
	}
	if in := srv.rot.info(); in.Phase != string(rotation.Grace) {
		srv.closeUnstarted()
		t.Fatalf("after rotate: phase %s, want grace", in.Phase)
	}
	srv.closeUnstarted()
	if st, err := daemon.CheckState(dir, statecheck.RoleServer); err != nil || st.Verdict.Action != statecheck.Start {
		t.Fatalf("before the keyring is replaced: %+v, %v", st, err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyringFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	_, checkErr := daemon.CheckState(dir, statecheck.RoleServer)
	if checkErr == nil || !strings.Contains(checkErr.Error(), keyringFile) {
		t.Fatalf("state check with the keyring of before the rotation: %v, want refused naming %s", checkErr, keyringFile)
	}
	if s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()}); err == nil {
		s.closeUnstarted()
		t.Fatal("the start accepted the keyring of before the rotation")
	}
}
