package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// A chunked backup reads back byte for byte in chunks; it is refused once
// read to its end, under another id, past its expiry, after a newer
// backup replaced it, and at an offset outside it.
func TestBackupStashChunks(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	st := &backupStash{now: clock.Now, chunk: 7}
	b := &admin.Backup{Format: admin.BackupFormat, ServerID: "x", Identity: []byte("identity"), Snapshot: bytes.Repeat([]byte("snap"), 20)}
	b.Seal()
	want, _ := json.Marshal(b)
	read := func(id string, off int64) (*admin.BackupChunk, error) {
		raw, _ := json.Marshal(admin.BackupChunkArgs{ID: id, Offset: off})
		return st.read(raw)
	}
	started, err := st.start(b)
	if err != nil || started.Size != int64(len(want)) || started.SHA256 != admin.SHA256Hex(want) {
		t.Fatalf("start: %+v %v", started, err)
	}
	var got []byte
	for calls := 0; int64(len(got)) < started.Size; calls++ {
		if calls > len(want) {
			t.Fatal("no end")
		}
		ch, err := read(started.ID, int64(len(got)))
		if err != nil || len(ch.Data) == 0 || len(ch.Data) > 7 {
			t.Fatalf("chunk at %d: %d bytes, %v", len(got), len(ch.Data), err)
		}
		got = append(got, ch.Data...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the chunks are not the backup")
	}
	if _, err := read(started.ID, 0); admin.CodeOf(err) != admin.CodeBadValue {
		t.Fatalf("read after its end: %v", err)
	}

	first, _ := st.start(b)
	if _, err := read("nope", 0); admin.CodeOf(err) != admin.CodeBadValue {
		t.Fatalf("another id: %v", err)
	}
	for _, off := range []int64{-1, int64(len(want)) + 1} {
		if _, err := read(first.ID, off); admin.CodeOf(err) != admin.CodeBadValue {
			t.Fatalf("offset %d: %v", off, err)
		}
	}
	if _, err := st.read(json.RawMessage(`{"id":"` + first.ID + `","offset":0,"more":1}`)); admin.CodeOf(err) != admin.CodeBadRequest {
		t.Fatalf("unknown field: %v", err)
	}
	second, _ := st.start(b)
	if _, err := read(first.ID, 0); admin.CodeOf(err) != admin.CodeBadValue {
		t.Fatalf("replaced backup: %v", err)
	}
	clock.add(backupStashTTL + time.Second)
	if _, err := read(second.ID, 0); admin.CodeOf(err) != admin.CodeBadValue {
		t.Fatalf("expired backup: %v", err)
	}
}

// FuzzBackupChunkArgs: any arguments of backup_chunk are answered with a
// chunk of the backup at the offset asked, or refused; never a panic.
func FuzzBackupChunkArgs(f *testing.F) {
	f.Add([]byte(`{"id":"ID","offset":0}`))
	f.Add([]byte(`{"id":"ID","offset":-5}`))
	f.Add([]byte(`{"id":"ID","offset":99999999999999}`))
	f.Add([]byte(`{"id":"other","offset":3}`))
	f.Add([]byte(`{"id":"ID","offset":1.5}`))
	f.Add([]byte(`null`))
	b := &admin.Backup{Format: admin.BackupFormat, Identity: []byte("identity"), Snapshot: []byte("snapshot")}
	b.Seal()
	whole, _ := json.Marshal(b)
	f.Fuzz(func(t *testing.T, raw []byte) {
		st := &backupStash{chunk: 5}
		started, err := st.start(b)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := st.read(bytes.ReplaceAll(raw, []byte(`"ID"`), []byte(`"`+started.ID+`"`)))
		if err != nil {
			if c := admin.CodeOf(err); c != admin.CodeBadValue && c != admin.CodeBadRequest {
				t.Fatalf("refused with code %q: %v", c, err)
			}
			return
		}
		if len(ch.Data) > 5 || !bytes.Contains(whole, ch.Data) {
			t.Fatalf("chunk %q is not part of the backup", ch.Data)
		}
	})
}

// Only an unbroken run of reads from the first chunk ends a backup: a
// stray read of the last chunk, or a chunk read again, leaves it for its
// reader.
func TestBackupStashEndsOnlyWhenReadInOrder(t *testing.T) {
	st := &backupStash{chunk: 4}
	defer st.close()
	b := &admin.Backup{Format: admin.BackupFormat, ServerID: "x", Identity: []byte("identity"), Snapshot: []byte("snapshot")}
	b.Seal()
	want, _ := json.Marshal(b)
	started, err := st.start(b)
	if err != nil {
		t.Fatal(err)
	}
	read := func(off int64) []byte {
		t.Helper()
		raw, _ := json.Marshal(admin.BackupChunkArgs{ID: started.ID, Offset: off})
		ch, err := st.read(raw)
		if err != nil {
			t.Fatalf("chunk at %d: %v", off, err)
		}
		return ch.Data
	}
	last := int64(len(want)-1) / 4 * 4
	read(last) // out of order: the end, first
	if !st.kept() {
		t.Fatal("a stray read of the last chunk ended the backup")
	}
	var got []byte
	for calls := 0; int64(len(got)) < started.Size; calls++ {
		if calls > len(want) {
			t.Fatal("no end")
		}
		if len(got) == 8 {
			read(4) // a retried chunk
		}
		got = append(got, read(int64(len(got)))...)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the chunks are not the backup")
	}
	if st.kept() {
		t.Fatal("read in order to its end, the backup is still kept")
	}
}

// A backup nobody reads is dropped by its timer, not kept until the next
// read; once the stash is closed a backup is refused.
func TestBackupStashTimerDropsUnreadBackup(t *testing.T) {
	st := &backupStash{ttl: time.Millisecond}
	b := &admin.Backup{Format: admin.BackupFormat, Identity: []byte("identity"), Snapshot: []byte("snapshot")}
	b.Seal()
	if _, err := st.start(b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.kept() {
		if time.Now().After(deadline) {
			t.Fatal("the unread backup is still kept past its timer")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	st.close()
	if _, err := st.start(b); admin.CodeOf(err) != admin.CodeConflict {
		t.Fatalf("start after close: %v", err)
	}
}
