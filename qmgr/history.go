package qmgr

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// HistoryFileName is the interactive history file in the user's home
	// directory (PBS qmgr keeps ~/.pbs_qmgr_history).
	HistoryFileName = ".momgate_qmgr_history"
	historyFileDoc  = "~/" + HistoryFileName
	// historyMax is how many directives the history keeps.
	historyMax = 500
	// historyMaxLine bounds one entry read back from the file.
	historyMaxLine = 4096
)

// History is the interactive prompt's directive history, kept in a file
// across sessions: one directive per line, owner-only, the newest last.
type History struct {
	path  string // "" keeps the history in memory only
	lines []string
}

// DefaultHistoryPath is HistoryFileName in the user's home directory.
func DefaultHistoryPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("history file: %w", err)
	}
	return filepath.Join(home, HistoryFileName), nil
}

// LoadHistory reads the history file at path, keeping its newest
// historyMax entries; a missing file is an empty history. path "" gives
// a history kept in memory only.
func LoadHistory(path string) (*History, error) {
	h := &History{path: path}
	if path == "" {
		return h, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), historyMaxLine)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			h.lines = append(h.lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read history %s: %w", path, err)
	}
	if len(h.lines) > historyMax {
		h.lines = h.lines[len(h.lines)-historyMax:]
		if err := h.rewrite(); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Lines returns the entries, oldest first.
func (h *History) Lines() []string { return h.lines }

// Path returns the history file, "" for a history in memory.
func (h *History) Path() string { return h.path }

// Add appends line unless it is blank or repeats the newest entry, and
// appends it to the file. It reports whether the entry was added.
func (h *History) Add(line string) (bool, error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.ContainsAny(line, "\n\r") || len(line) > historyMaxLine ||
		len(h.lines) > 0 && h.lines[len(h.lines)-1] == line {
		return false, nil
	}
	h.lines = append(h.lines, line)
	if len(h.lines) > historyMax {
		h.lines = h.lines[len(h.lines)-historyMax:]
	}
	if h.path == "" {
		return true, nil
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return true, fmt.Errorf("write history %s: %w", h.path, err)
	}
	_, err = f.WriteString(line + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return true, fmt.Errorf("write history %s: %w", h.path, err)
	}
	return true, nil
}

// rewrite replaces the file with the entries kept, atomically.
func (h *History) rewrite() error {
	tmp, err := os.CreateTemp(filepath.Dir(h.path), ".momgate_qmgr_history.*")
	if err != nil {
		return fmt.Errorf("trim history %s: %w", h.path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(strings.Join(h.lines, "\n") + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), h.path)
	}
	if err != nil {
		return fmt.Errorf("trim history %s: %w", h.path, err)
	}
	return nil
}

// formatHistory numbers the entries as the history directive prints them.
func formatHistory(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%5d  %s\n", i+1, l)
	}
	return b.String()
}
