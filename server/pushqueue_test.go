package server

import (
	"sync"
	"testing"
	"time"
)

// TestPushQueueOrderAndWriterOnDemand: frames come out in the order they
// went in, a writer runs only while frames wait, and nothing is taken
// before the start or after the stop.
func TestPushQueueOrderAndWriterOnDemand(t *testing.T) {
	var q pushQueue
	var mu sync.Mutex
	var got []byte
	writers := 0
	release := make(chan struct{})
	write := func() {
		mu.Lock()
		writers++
		mu.Unlock()
		<-release
		for {
			it, ok := q.next()
			if !ok {
				return
			}
			mu.Lock()
			got = append(got, it.frame[0])
			mu.Unlock()
		}
	}
	if taken, _ := q.push(pushItem{pushDeny, []byte{0}}, write); taken {
		t.Fatal("frame taken before the queue started")
	}
	q.mu.Lock()
	q.started = true
	q.mu.Unlock()
	for i := byte(1); i <= 5; i++ {
		if taken, full := q.push(pushItem{pushDeny, []byte{i}}, write); !taken || full {
			t.Fatalf("frame %d: taken %v full %v", i, taken, full)
		}
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		idle := !q.writing && q.items == nil
		q.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer did not drain the queue")
		}
		time.Sleep(time.Millisecond) // poll interval
	}
	q.writers.Wait()
	mu.Lock()
	if string(got) != "\x01\x02\x03\x04\x05" || writers != 1 {
		t.Fatalf("written %v by %d writers, want 1..5 by one", got, writers)
	}
	mu.Unlock()
	// Idle again: the next frame starts a new writer.
	if taken, _ := q.push(pushItem{pushDeny, []byte{6}}, write); !taken {
		t.Fatal("frame not taken after the queue drained")
	}
	q.stop()
	mu.Lock()
	if writers != 2 {
		t.Fatalf("%d writers, want a second one for the later frame", writers)
	}
	mu.Unlock()
	if taken, _ := q.push(pushItem{pushDeny, []byte{7}}, write); taken || q.active() {
		t.Fatal("frame taken after stop")
	}
}

// TestPushQueueFull: past pushQueueLen waiting frames, push reports full.
func TestPushQueueFull(t *testing.T) {
	var q pushQueue
	q.started = true
	block := make(chan struct{})
	write := func() { <-block }
	for i := range pushQueueLen {
		if taken, full := q.push(pushItem{pushDeny, []byte{1}}, write); !taken || full {
			t.Fatalf("frame %d: taken %v full %v", i, taken, full)
		}
	}
	if taken, full := q.push(pushItem{pushDeny, []byte{1}}, write); taken || !full {
		t.Fatalf("frame past the bound: taken %v full %v, want full", taken, full)
	}
	close(block)
	q.stop()
}
