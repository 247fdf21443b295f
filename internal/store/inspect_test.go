package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/statecheck"
)

// stateDir builds a state directory of role in the current formats, as a
// daemon leaves it after a clean stop: every file of the role, a mark
// store with a few marks, at the server a journal with a few lines, and
// the manifest.
func stateDir(t *testing.T, role statecheck.Role) string {
	t.Helper()
	dir := t.TempDir()
	files := statecheck.Files(role, true)
	for _, f := range files {
		switch f {
		case MarkSnapName, MarkLogName, "state.journal", "rotation.journal", "deny.journal":
		case "ceiling":
			if err := os.WriteFile(filepath.Join(dir, f), EncodeCeiling(12345), 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(filepath.Join(dir, f), []byte("{\"format\": 1}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, _ := newStore(t, dir, 3)
	mustClose(t, m)
	if role == statecheck.RoleServer {
		for _, jf := range [][3]string{{"state.journal", "state.json", "node"}, {"rotation.journal", "rotation.json", "behind"}, {"deny.journal", "deny.json", "deny"}} {
			js, err := ReadStateJournal(filepath.Join(dir, jf[0]), JournalOptions{Snapshot: filepath.Join(dir, jf[1])})
			if err != nil {
				t.Fatal(err)
			}
			j, err := js.Open()
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Append([]JournalRecord{jrec(jf[2], "a", `{"n":1}`), jrec(jf[2], "b", `{"n":2}`)}); err != nil {
				t.Fatal(err)
			}
			j.Close()
		}
	}
	if err := SaveManifest(dir, role.String(), files); err != nil {
		t.Fatal(err)
	}
	return dir
}

func inspect(t *testing.T, dir string, role statecheck.Role) *Inspection {
	t.Helper()
	in, err := InspectDir(dir, role, bootA)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// TestInspectDirVerdicts: for each file of each role, deleting, emptying
// or damaging it leads to the verdict docs/SECURITY.md section 7 gives.
func TestInspectDirVerdicts(t *testing.T) {
	type damage struct {
		name string
		do   func(t *testing.T, path string)
	}
	damages := []damage{
		{"deleted", func(t *testing.T, p string) { remove(t, p) }},
		{"emptied", func(t *testing.T, p string) { truncate(t, p, 0) }},
		{"tail zeroed", func(t *testing.T, p string) { zeroTail(t, p, 3) }},
		// A JSON file cut anywhere but in its trailing white space loses its
		// closing brace, and strict decoding refuses it.
		{"cut in half", func(t *testing.T, p string) { truncate(t, p, fileSize(t, p)/2) }},
	}
	cases := []struct {
		role  statecheck.Role
		file  string
		want  statecheck.Action
		steps []statecheck.Step
	}{
		{statecheck.RoleMom, "identity.json", statecheck.Refuse, nil},
		{statecheck.RoleMom, "mom.json", statecheck.Refuse, nil},
		{statecheck.RoleMom, "keyring.json", statecheck.Recover, []statecheck.Step{statecheck.StepKeyringRefetch}},
		{statecheck.RoleMom, "deny.json", statecheck.Recover, []statecheck.Step{statecheck.StepDenyHold}},
		{statecheck.RoleMom, "legacy.json", statecheck.Recover, []statecheck.Step{statecheck.StepLegacyHold}},
		{statecheck.RoleMom, "jobs.json", statecheck.Recover, []statecheck.Step{statecheck.StepJobsDropped}},
		{statecheck.RoleMom, "ceiling", statecheck.Recover, []statecheck.Step{statecheck.StepCeilingFromClock}},
		{statecheck.RoleMom, MarkLogName, statecheck.Recover, []statecheck.Step{statecheck.StepMarksFloor}},
		{statecheck.RoleMom, MarkSnapName, statecheck.Recover, []statecheck.Step{statecheck.StepMarksFloor}},
		{statecheck.RoleServer, "identity.json", statecheck.Refuse, nil},
		{statecheck.RoleServer, "keyring.json", statecheck.Refuse, nil},
		{statecheck.RoleServer, "state.json", statecheck.Refuse, nil},
		{statecheck.RoleServer, "state.journal", statecheck.Refuse, nil},
		{statecheck.RoleServer, "deny.json", statecheck.Recover, []statecheck.Step{statecheck.StepRotateWithholdDeny}},
		{statecheck.RoleServer, "rotation.json", statecheck.Recover, []statecheck.Step{statecheck.StepRotateNow}},
		{statecheck.RoleServer, "ceiling", statecheck.Recover, []statecheck.Step{statecheck.StepCeilingFromClock}},
		{statecheck.RoleServer, MarkLogName, statecheck.Recover, []statecheck.Step{statecheck.StepMarksFloor}},
	}
	for _, tc := range cases {
		for _, d := range damages {
			t.Run(tc.role.String()+"/"+tc.file+"/"+d.name, func(t *testing.T) {
				dir := stateDir(t, tc.role)
				if v := inspect(t, dir, tc.role).Judge(dir); v.Action != statecheck.Start {
					t.Fatalf("undamaged directory: %+v", v)
				}
				d.do(t, filepath.Join(dir, tc.file))
				v := inspect(t, dir, tc.role).Judge(dir)
				if v.Action != tc.want {
					t.Fatalf("verdict %v, want %v: %+v", v.Action, tc.want, v)
				}
				for _, s := range tc.steps {
					if !v.Has(s) {
						t.Fatalf("steps %v lack %v", v.Steps, s)
					}
				}
				if tc.want == statecheck.Refuse && !errors.Is(v.Err(dir), statecheck.ErrStateLost) {
					t.Fatalf("refusal error: %v", v.Err(dir))
				}
			})
		}
	}
}

// TestInspectDirRotationJournal: rotation.journal lost (deleted, emptied,
// cut, or rotation.json replaced under it) recovers by a rotation at once,
// as rotation.json lost does; a line damaged before the end refuses the
// start rather than being dropped with the lines after it.
func TestInspectDirRotationJournal(t *testing.T) {
	const name = "rotation.journal"
	cases := []struct {
		name string
		do   func(t *testing.T, dir string)
		want statecheck.Action
	}{
		{"deleted", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, name)) }, statecheck.Recover},
		{"emptied", func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, name), 0) }, statecheck.Recover},
		{"torn in its last line", func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			truncate(t, p, fileSize(t, p)-3)
		}, statecheck.Recover},
		{"cut at a line boundary", func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, p, int64(bytes.LastIndexByte(data[:len(data)-1], '\n')+1))
		}, statecheck.Recover},
		{"snapshot replaced", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "rotation.json"), []byte("{\"format\": 1, \"phase\": \"idle\"}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, statecheck.Recover},
		{"first line damaged", func(t *testing.T, dir string) {
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := JournalHeaderSize + 20 // inside the first of the two lines
			data[i] ^= 0x01
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}, statecheck.Refuse},
		{"tail zeroed", func(t *testing.T, dir string) { zeroTail(t, filepath.Join(dir, name), 3) }, statecheck.Refuse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t, statecheck.RoleServer)
			if v := inspect(t, dir, statecheck.RoleServer).Judge(dir); v.Action != statecheck.Start {
				t.Fatalf("undamaged directory: %+v", v)
			}
			tc.do(t, dir)
			v := inspect(t, dir, statecheck.RoleServer).Judge(dir)
			if v.Action != tc.want {
				t.Fatalf("verdict %v, want %v: %+v", v.Action, tc.want, v)
			}
			if tc.want == statecheck.Recover && !v.Has(statecheck.StepRotateNow) {
				t.Fatalf("steps %v lack %v", v.Steps, statecheck.StepRotateNow)
			}
			if tc.want == statecheck.Refuse && (!errors.Is(v.Err(dir), statecheck.ErrStateLost) || !strings.Contains(v.Err(dir).Error(), name)) {
				t.Fatalf("refusal error: %v", v.Err(dir))
			}
		})
	}
}

// TestInspectDirManifestDeleted: without its manifest a directory of the
// current formats is checked against every file of its role.
func TestInspectDirManifestDeleted(t *testing.T) {
	dir := stateDir(t, statecheck.RoleMom)
	remove(t, filepath.Join(dir, ManifestName))
	remove(t, filepath.Join(dir, "deny.json"))
	in := inspect(t, dir, statecheck.RoleMom)
	v := in.Judge(dir)
	if v.Action != statecheck.Recover || !v.Has(statecheck.StepRewriteManifest) || !v.Has(statecheck.StepDenyHold) {
		t.Fatalf("verdict %+v", v)
	}
}

// TestInspectDirOldVersion: a directory written by the previous version
// (format 1 marks, no manifest, no deny list yet) loses nothing.
func TestInspectDirOldVersion(t *testing.T) {
	dir := t.TempDir()
	old, _ := openMarks(t, dir)
	putSeq(t, old, 5, 2)
	mustClose(t, old)
	for _, f := range []string{"identity.json", "keyring.json", "mom.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in := inspect(t, dir, statecheck.RoleMom)
	v := in.Judge(dir)
	// Fail-closed: nothing proves the old marks whole (nor that a
	// manifest was not deleted with the marks), so the recovery floor;
	// the deny list and upgraded set are held until the server sends them.
	if v.Action != statecheck.Recover || len(v.Upgraded) == 0 ||
		!slices.Equal(v.Steps, []statecheck.Step{statecheck.StepMarksFloor, statecheck.StepDenyHold, statecheck.StepLegacyHold, statecheck.StepSessionsHold}) {
		t.Fatalf("verdict %+v", v)
	}
	if !slices.Equal(in.Expected, []string{"identity.json", "keyring.json", "mom.json", "deny.json", "legacy.json", "sessions.json"}) {
		t.Fatalf("expected %v in an enrolled directory without a manifest", in.Expected)
	}
	// Its identity gone: the enrollment it belongs to says it existed.
	if err := os.Remove(filepath.Join(dir, "identity.json")); err != nil {
		t.Fatal(err)
	}
	v = inspect(t, dir, statecheck.RoleMom).Judge(dir)
	if v.Action != statecheck.Refuse || v.Refused[0].File != "identity.json" {
		t.Fatalf("old directory without its identity: %+v", v)
	}
}

func TestInspectDirWrongRole(t *testing.T) {
	dir := stateDir(t, statecheck.RoleServer)
	if _, err := InspectDir(dir, statecheck.RoleMom, bootA); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("a server directory inspected as a MOM's: %v", err)
	}
}

func TestManifestRoundTripStrict(t *testing.T) {
	dir := t.TempDir()
	if err := SaveManifest(dir, "mom", []string{"b", "a", "b"}); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(dir)
	if err != nil || !slices.Equal(m.Files, []string{"a", "b"}) || !m.Lists("a") {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{`{"format":2,"role":"mom","files":[]}`, `{"format":1,"role":"x","files":[]}`,
		`{"format":1,"role":"mom","files":["../x"]}`, `{"format":1,"role":"mom","files":["b","a"]}`, `{"format":1}}`} {
		if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadManifest(dir); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", bad, err)
		}
	}
	if err := SaveManifest(dir, "mom", []string{"../x"}); err == nil {
		t.Fatal("saved a manifest naming a path")
	}
}

// The manifest and marks of an enrolled MOM deleted together: not a first
// start, the recovery floor.
func TestInspectDirManifestDeletedWithMarks(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"identity.json", "keyring.json", "mom.json", "deny.json", "legacy.json", "jobs.json", "sessions.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	v := inspect(t, dir, statecheck.RoleMom).Judge(dir)
	if v.Action != statecheck.Recover || !v.Has(statecheck.StepMarksFloor) {
		t.Fatalf("verdict %+v", v)
	}
	// A fresh directory (never enrolled) has nothing to lose.
	if v := inspect(t, t.TempDir(), statecheck.RoleMom).Judge(dir); v.Action != statecheck.Start {
		t.Fatalf("fresh directory: %+v", v)
	}
}

// A server directory whose manifest, marks and journal are gone, beside a
// state.json this version wrote ("manifest": true): every file is
// expected, so the lost journal refuses the start. Without the mark (an
// older version's directory) the journal is not expected, and the marks
// are recovered with a floor.
func TestInspectDirServerSnapshotMarked(t *testing.T) {
	for _, marked := range []bool{true, false} {
		dir := t.TempDir()
		snap := `{"format":1,"id":"x","nodes":[]}`
		if marked {
			snap = `{"format":1,"manifest":true,"id":"x","nodes":[]}`
		}
		for f, data := range map[string]string{"identity.json": "{}", "keyring.json": "{}", "state.json": snap} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		v := inspect(t, dir, statecheck.RoleServer).Judge(dir)
		switch {
		case marked && (v.Action != statecheck.Refuse || !slices.ContainsFunc(v.Refused, func(e statecheck.Entry) bool { return e.File == "state.journal" })):
			t.Fatalf("marked: %+v", v)
		case !marked && (v.Action != statecheck.Recover || !v.Has(statecheck.StepMarksFloor)):
			t.Fatalf("not marked: %+v", v)
		}
	}
}

// A manifest edited to list fewer files than a daemon's start writes
// does not make their deletion silent: the base set is expected anyway.
// A file added since (sessions.json) may be absent from an older one.
func TestInspectDirManifestEdited(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"identity.json", "keyring.json", "mom.json", "deny.json", "legacy.json", "jobs.json"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := SaveManifest(dir, "mom", []string{"identity.json", "keyring.json", "mom.json", "marks.log", "jobs.json"}); err != nil {
		t.Fatal(err)
	}
	v := inspect(t, dir, statecheck.RoleMom).Judge(dir)
	missing := map[string]bool{}
	for _, e := range v.Recovered {
		if e.Problem == statecheck.Missing {
			missing[e.File] = true
		}
	}
	if !missing["marks.snap"] || !missing["ceiling"] || missing["sessions.json"] || !v.Has(statecheck.StepMarksFloor) {
		t.Fatalf("edited manifest: %+v", v)
	}
}
