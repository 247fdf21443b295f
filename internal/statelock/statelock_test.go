package statelock

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dirState is what a refused locker must not change: every entry's name,
// mode, size, modification time and content.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().Format(time.RFC3339Nano)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameState(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("entries changed: %v -> %v", before, after)
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("%s changed: %q -> %q", k, v, after[k])
		}
	}
}

func TestSecondLockerRefusedTouchingNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marks.log"), []byte("records"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)
	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second locker: %v, want ErrLocked", err)
	}
	for _, want := range []string{dir, "process " + strconv.Itoa(os.Getpid()), "--state-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q does not name %q", err, want)
		}
	}
	sameState(t, before, dirState(t, dir))
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l2.Release()
}

// TestLockHeldByAnotherProcess: the lock excludes another process, and is
// dropped by the kernel when its holder is killed.
func TestLockHeldByAnotherProcess(t *testing.T) {
	if dir := os.Getenv("STATELOCK_HOLD"); dir != "" {
		if _, err := Acquire(dir); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		io.Copy(io.Discard, os.Stdin) // hold until the parent kills us (or exits)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHeldByAnotherProcess$")
	cmd.Env = append(os.Environ(), "STATELOCK_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("holder: %q %v", buf, err)
	}
	before := dirState(t, dir)
	_, err = Acquire(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "process "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("locker beside another process: %v", err)
	}
	sameState(t, before, dirState(t, dir))
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}

func TestAcquireRefusesBadPaths(t *testing.T) {
	dir := t.TempDir()
	if _, err := Acquire(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("locked a missing directory")
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(file); err == nil {
		t.Fatal("locked a file")
	}
	link := t.TempDir()
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(link, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(link); err == nil {
		t.Fatal("followed a symlinked lock file")
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); err == nil {
		t.Fatal("created the symlink's target")
	}
}

// A lock file deleted, or replaced by another file, under its holder does
// not let a second locker in: the directory itself is locked. The refused
// locker does not create the deleted file again.
func TestLockFileDeletedOrReplacedUnderHolder(t *testing.T) {
	for _, replace := range []bool{false, true} {
		dir := t.TempDir()
		held, err := Acquire(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, FileName)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if replace {
			if err := os.WriteFile(path, []byte("restored\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		before := dirState(t, dir)
		if l, err := Acquire(dir); !errors.Is(err, ErrLocked) {
			l.Release()
			t.Fatalf("replace=%v: second locker: %v, want ErrLocked", replace, err)
		}
		sameState(t, before, dirState(t, dir))
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
		l, err := Acquire(dir)
		if err != nil {
			t.Fatalf("replace=%v: after the holder released: %v", replace, err)
		}
		l.Release()
	}
}
