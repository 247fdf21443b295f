package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/statecheck"
)

// The start-up path both daemons share (docs/SECURITY.md section 7): the
// state directory is locked before any state file is opened for writing,
// every file is inspected and the verdict decides: start, recover in a
// fail-closed way (loudly: an error-level line per file and the counter
// momgate_state_recoveries_total{step}), or refuse, naming each file, what
// was lost and the recovery.

// State is a daemon's state directory, locked and judged. The daemon opens
// its stores from it (In: what was read) and follows the recovery steps of
// the verdict. Close releases the lock; a Base that was opened on it does.
type State struct {
	Dir     string
	Role    statecheck.Role
	In      *store.Inspection
	Verdict statecheck.Verdict
	Boot    [16]byte // this boot's id, recorded in the mark log while open

	lock *statelock.Lock
	mu   sync.Mutex
	recs map[string]float64 // recoveries by step, for the counter
}

// OpenState refuses a directory group or others can reach
// (statefile.CheckStateDir: it names the chmod that fixes it), locks dir,
// inspects every state file of role without writing any, and judges what
// it found. A refusal (statecheck.ErrStateLost, statefile.ErrInsecurePerm)
// or a locked directory (statelock.ErrLocked) is returned with the lock
// released and nothing in dir changed. Otherwise each recovered file is
// logged at error level and each upgraded one at info level.
func OpenState(dir string, role statecheck.Role, log logrus.FieldLogger) (*State, error) {
	return openState(dir, role, log, store.InspectOptions{})
}

// OpenStateToReplace is OpenState for a caller that replaces the JSON
// state files whole and needs only the journals' states (a group member
// writing its replica out): the loaders' decoders of the files it is
// about to overwrite are not run.
func OpenStateToReplace(dir string, role statecheck.Role, log logrus.FieldLogger) (*State, error) {
	return openState(dir, role, log, store.InspectOptions{NoDecoders: true})
}

func openState(dir string, role statecheck.Role, log logrus.FieldLogger, opts store.InspectOptions) (*State, error) {
	if err := statefile.CheckStateDir(dir); err != nil {
		return nil, err
	}
	lock, err := statelock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	st, err := judgeDir(dir, role, log, opts)
	if err != nil {
		lock.Release()
		return nil, err
	}
	st.lock = lock
	recovered, upgraded := st.Verdict.Lines()
	for _, l := range recovered {
		log.WithField("state_dir", dir).Error("state loss: " + l)
	}
	for _, l := range upgraded {
		log.WithField("state_dir", dir).Info("state upgrade: " + l)
	}
	for _, s := range st.Verdict.Steps {
		st.recs[s.String()]++
	}
	return st, nil
}

// CheckState is OpenState without the lock and without logging: what a
// start would decide, for `state check`. It writes nothing.
func CheckState(dir string, role statecheck.Role) (*State, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return judgeDir(dir, role, nil, store.InspectOptions{})
}

func judgeDir(dir string, role statecheck.Role, log logrus.FieldLogger, opts store.InspectOptions) (*State, error) {
	boot, err := store.BootID()
	if err != nil && log != nil {
		log.WithError(err).Warn("no boot id: a mark log left open is then not provably whole")
	}
	in, err := store.InspectDirWith(dir, role, boot, opts)
	if err != nil {
		return nil, err
	}
	v := in.Judge(dir)
	if err := v.Err(dir); err != nil {
		return nil, err
	}
	st := &State{Dir: dir, Role: role, In: in, Verdict: v, Boot: boot, recs: map[string]float64{}}
	for _, s := range statecheck.AllSteps() {
		st.recs[s.String()] = 0
	}
	return st, nil
}

// Has reports whether the verdict includes recovery step s.
func (s *State) Has(step statecheck.Step) bool { return s.Verdict.Has(step) }

// Lost reports whether file was found lost (missing, damaged, cut short,
// not provably whole or inconsistent): its recovery recreates it, not the
// defaults of a first start.
func (s *State) Lost(file string) bool {
	return slices.ContainsFunc(s.Verdict.Recovered, func(e statecheck.Entry) bool { return e.File == file })
}

// Absent reports whether file does not exist in the directory.
func (s *State) Absent(file string) bool {
	_, err := os.Lstat(filepath.Join(s.Dir, file))
	return errors.Is(err, fs.ErrNotExist)
}

// CreateDefault writes a file of a first start (a version that adds the
// file, or a directory that never needed it yet) with write, unless the
// file exists or was lost, whose recovery recreates it.
func (s *State) CreateDefault(file string, write func() error) error {
	if !s.Absent(file) || s.Lost(file) {
		return nil
	}
	if err := write(); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(s.Dir, file), err)
	}
	return nil
}

// SyncManifest writes the manifest when it is missing, damaged, lists
// other files than statecheck.Files(role, enrolled) or marks a restore
// already acted on. Call it once the files of a first start exist.
func (s *State) SyncManifest(enrolled bool) error {
	files := statecheck.Files(s.Role, enrolled)
	m := s.In.Manifest
	sorted := slices.Sorted(slices.Values(files))
	if m != nil && slices.Equal(m.Files, sorted) && !m.Restored && !s.Has(statecheck.StepRewriteManifest) {
		return nil
	}
	if err := store.SaveManifest(s.Dir, s.Role.String(), files); err != nil {
		return err
	}
	s.In.Manifest = &store.Manifest{Format: store.ManifestFormat, Role: s.Role.String(), Files: sorted}
	return nil
}

// Recoveries returns the recovery counts by step, for the counter
// momgate_state_recoveries_total{step}.
func (s *State) Recoveries() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]float64, len(s.recs))
	for k, v := range s.recs {
		out[k] = v
	}
	return out
}

// Close releases the lock. Call it after every state file is closed.
func (s *State) Close() error {
	if s == nil {
		return nil
	}
	return s.lock.Release()
}
