package pbsauth

import "time"

// expiring is a map whose entries live at most ttl and of which at most
// max are kept: past either bound the oldest go first. Every entry has
// the same lifetime, so insertion order is expiry order and a FIFO of
// keys finds the oldest in O(1). Not safe for concurrent use.
type expiring[K comparable, V any] struct {
	ttl   time.Duration
	max   int
	seq   uint64
	items map[K]expiringItem[V]
	order []expiringKey[K] // FIFO, oldest first; may hold keys taken since
	head  int
}

type expiringItem[V any] struct {
	v   V
	seq uint64
}

type expiringKey[K comparable] struct {
	k   K
	seq uint64 // the item's seq when it was added: it is live while equal
	exp time.Time
}

func newExpiring[K comparable, V any](ttl time.Duration, max int) *expiring[K, V] {
	return &expiring[K, V]{ttl: ttl, max: max, items: make(map[K]expiringItem[V])}
}

// prune drops expired entries, then the oldest while more than keep
// remain.
func (e *expiring[K, V]) prune(now time.Time, keep int) {
	for e.head < len(e.order) {
		o := e.order[e.head]
		it, ok := e.items[o.k]
		live := ok && it.seq == o.seq
		if live && now.Before(o.exp) && len(e.items) <= keep {
			break
		}
		if live {
			delete(e.items, o.k)
		}
		e.order[e.head] = expiringKey[K]{}
		e.head++
	}
	// Reuse the FIFO's space once its dead front is half of it, and drop
	// the entries of taken keys once they are most of it (add and take
	// in a loop leave one each): the FIFO stays within 2*max+1 entries,
	// at amortised O(1).
	if e.head > 0 && e.head*2 >= len(e.order) {
		n := copy(e.order, e.order[e.head:])
		clear(e.order[n:])
		e.order = e.order[:n]
		e.head = 0
	}
	if len(e.order)-e.head > 2*e.max {
		live := e.order[:0]
		for _, o := range e.order[e.head:] {
			if it, ok := e.items[o.k]; ok && it.seq == o.seq {
				live = append(live, o)
			}
		}
		clear(e.order[len(live):])
		e.order, e.head = live, 0
	}
}

// add adds k unless it is there and live, and returns whether it was:
// a live entry keeps its value and its expiry.
func (e *expiring[K, V]) add(now time.Time, k K, v V) bool {
	e.prune(now, e.max)
	if _, ok := e.items[k]; ok {
		return true
	}
	e.prune(now, e.max-1)
	e.seq++
	e.items[k] = expiringItem[V]{v: v, seq: e.seq}
	e.order = append(e.order, expiringKey[K]{k: k, seq: e.seq, exp: now.Add(e.ttl)})
	return false
}

// take removes and returns k's live entry.
func (e *expiring[K, V]) take(now time.Time, k K) (V, bool) {
	e.prune(now, e.max)
	it, ok := e.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	delete(e.items, k)
	return it.v, true
}

func (e *expiring[K, V]) len() int { return len(e.items) }
