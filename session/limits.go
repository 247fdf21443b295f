package session

import (
	"fmt"
	"time"
)

// Default limits (section 6.6 gives the reasons).
const (
	// DefaultRekeyAfterTime: a side starts a rekey when its keys are this
	// old, as WireGuard does.
	DefaultRekeyAfterTime = 120 * time.Second
	// DefaultRejectAfterTime: keys this old are never used again; a
	// session whose rekey has not completed by then is closed.
	DefaultRejectAfterTime = 180 * time.Second
	// DefaultRekeyAfterRecords: a side starts a rekey when either
	// direction has this many records under the current keys.
	DefaultRekeyAfterRecords = 1 << 30
	// DefaultRejectAfterRecords: no key protects more records than this.
	DefaultRejectAfterRecords = 1 << 31
)

// Limits bound a session's keys. The zero value of a field means its
// default; both sides use their own limits.
type Limits struct {
	RekeyAfterTime     time.Duration
	RejectAfterTime    time.Duration
	RekeyAfterRecords  uint64
	RejectAfterRecords uint64
	// MaxRecord caps a record, header and tag included, in both
	// directions: a received header announcing more is ErrSize, and a frame
	// that would not fit is refused on send. The cap is not negotiated, so
	// both sides must use the same one: the protocol's MaxRecordSize (0
	// means it, and it is also the most allowed), which every daemon uses;
	// a lower one is for tests.
	MaxRecord int
}

// withDefaults fills zero fields and checks the limits are consistent.
func (l Limits) withDefaults() (Limits, error) {
	if l.RekeyAfterTime == 0 {
		l.RekeyAfterTime = DefaultRekeyAfterTime
	}
	if l.RejectAfterTime == 0 {
		l.RejectAfterTime = DefaultRejectAfterTime
	}
	if l.RekeyAfterRecords == 0 {
		l.RekeyAfterRecords = DefaultRekeyAfterRecords
	}
	if l.RejectAfterRecords == 0 {
		l.RejectAfterRecords = DefaultRejectAfterRecords
	}
	if l.MaxRecord == 0 {
		l.MaxRecord = MaxRecordSize
	}
	switch {
	case l.RekeyAfterTime <= 0 || l.RejectAfterTime <= l.RekeyAfterTime:
		return l, fmt.Errorf("session limits: rekey after %s must be positive and below reject after %s", l.RekeyAfterTime, l.RejectAfterTime)
	case l.RejectAfterRecords <= l.RekeyAfterRecords:
		return l, fmt.Errorf("session limits: rekey after %d records must be below reject after %d", l.RekeyAfterRecords, l.RejectAfterRecords)
	case l.MaxRecord < MinRecordSize+rekeyFrameSize || l.MaxRecord > MaxRecordSize:
		return l, fmt.Errorf("session limits: record cap %d outside [%d, %d]", l.MaxRecord, MinRecordSize+rekeyFrameSize, MaxRecordSize)
	}
	return l, nil
}
