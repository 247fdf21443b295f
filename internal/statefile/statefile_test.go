package statefile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteAtomic(t *testing.T) {
	// A restrictive and a permissive umask: the mode is exactly perm.
	for _, mask := range []int{0o022, 0o077, 0} {
		old := syscall.Umask(mask)
		t.Cleanup(func() { syscall.Umask(old) })
		dir := t.TempDir()
		path := filepath.Join(dir, "state.json")
		for _, tc := range []struct {
			data []byte
			perm fs.FileMode
		}{
			{[]byte("first"), 0o600},
			{[]byte("second, longer than the first"), 0o640}, // replaces, mode changes
			{[]byte{}, 0o600},                                // replaced by empty
			{bytes.Repeat([]byte{0xa5}, 1<<16), 0o400},
		} {
			if err := WriteAtomic(path, tc.data, tc.perm); err != nil {
				t.Fatalf("umask %03o: %v", mask, err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("umask %03o: read back %d bytes, %v; want %d bytes", mask, len(got), err, len(tc.data))
			}
			if p := perm(t, path); p != tc.perm {
				t.Fatalf("umask %03o: mode %04o, want %04o", mask, p, tc.perm)
			}
			if names := dirNames(t, dir); len(names) != 1 || names[0] != "state.json" {
				t.Fatalf("umask %03o: directory holds %v, want only state.json (temp file left?)", mask, names)
			}
		}
		syscall.Umask(old)
	}
}

// TestWriteAtomicReplacesNotTruncates: a reader holding the old file
// keeps the old content whole; the new content is a new inode.
func TestWriteAtomicReplacesNotTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteAtomic(path, []byte("old content"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := WriteAtomic(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := f.Read(buf)
	if string(buf[:n]) != "old content" {
		t.Fatalf("the old file was modified in place: %q", buf[:n])
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Fatalf("new content %q", got)
	}
}

func TestWriteAtomicFailures(t *testing.T) {
	dir := t.TempDir()
	// No such directory: an error naming the path, nothing created.
	missing := filepath.Join(dir, "nope", "f")
	err := WriteAtomic(missing, []byte("x"), 0o600)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing dir: %v", err)
	}
	// The target is a directory: rename fails and the temp file is removed.
	target := filepath.Join(dir, "isdir")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = WriteAtomic(target, []byte("x"), 0o600)
	if err == nil || !strings.Contains(err.Error(), "rename") {
		t.Fatalf("rename over a directory: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "isdir" {
		t.Fatalf("after a failed write the directory holds %v (temp file left?)", names)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func writeMode(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestReadPrivatePermissions(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []fs.FileMode{0o600, 0o400, 0o700} {
		path := filepath.Join(dir, "ok")
		writeMode(t, path, []byte("secret"), mode)
		got, err := ReadPrivate(path)
		if err != nil || string(got) != "secret" {
			t.Errorf("mode %04o: %q, %v", mode, got, err)
		}
	}
	for _, mode := range []fs.FileMode{0o640, 0o644, 0o604, 0o660, 0o606, 0o610, 0o601, 0o620, 0o602, 0o777} {
		path := filepath.Join(dir, "open")
		writeMode(t, path, []byte("secret"), mode)
		got, err := ReadPrivate(path)
		if got != nil || !errors.Is(err, ErrInsecurePerm) {
			t.Errorf("mode %04o: %q, %v; want ErrInsecurePerm", mode, got, err)
			continue
		}
		// The message names the file, its mode and the fix.
		msg := err.Error()
		for _, want := range []string{path, "0" + formatOctal(mode), "chmod 600 " + path} {
			if !strings.Contains(msg, want) {
				t.Errorf("mode %04o: error %q does not mention %q", mode, msg, want)
			}
		}
	}
}

func formatOctal(m fs.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeMode(t, path, nil, 0o644)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(path, fi); !errors.Is(err, ErrInsecurePerm) {
		t.Fatalf("0644: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(path, fi); err != nil {
		t.Fatalf("0600: %v", err)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(dir, di); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("directory: %v", err)
	}
}

// TestReadPrivateNotRegular: a symlink, a directory, a FIFO and a device
// are refused with ErrNotRegular. Regression: ReadPrivate used to block
// for ever in open(2) on a FIFO with no writer (a key path pointing at a
// FIFO hung the daemon at start); it now opens with O_NONBLOCK.
func TestReadPrivateNotRegular(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	writeMode(t, target, []byte("secret"), 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{link, sub, fifo, "/dev/null"} {
		got, err := ReadPrivate(path)
		if got != nil || !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %q, %v; want ErrNotRegular naming the path", path, got, err)
		}
	}
}

func TestReadPrivateSize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	writeMode(t, path, make([]byte, MaxPrivateSize), 0o600)
	if got, err := ReadPrivate(path); err != nil || len(got) != MaxPrivateSize {
		t.Fatalf("file of exactly the limit: %d bytes, %v", len(got), err)
	}
	writeMode(t, path, make([]byte, MaxPrivateSize+1), 0o600)
	if got, err := ReadPrivate(path); got != nil || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), path) {
		t.Fatalf("file over the limit: %d bytes, %v", len(got), err)
	}
}

func TestReadPrivateMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing")
	if _, err := ReadPrivate(path); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestReadPrivateWrongOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "f")
	writeMode(t, path, []byte("secret"), 0o600)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	got, err := ReadPrivate(path)
	if got != nil || !errors.Is(err, ErrWrongOwner) {
		t.Fatalf("file owned by uid 65534: %q, %v", got, err)
	}
	for _, want := range []string{path, "uid 65534", "chown 0 " + path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
