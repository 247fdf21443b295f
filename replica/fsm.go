package replica

import "io"

// Result is what applying one entry produced, handed back to the member
// that proposed it (the others discard it). Err is a refusal decided by
// the state itself, deterministic on every member (for the server's state:
// a record that does not decode, refused whole). It is not a failure of
// the member.
type Result struct {
	Value any
	Err   error
}

// StateMachine is the replicated state: the server's records, state files
// and member list, as server/replicated.go keeps them (docs/HA.md section
// 12.1). The consensus layer calls Apply for each committed entry in log
// order on every member, one call at a time.
type StateMachine interface {
	// Apply applies one committed entry at log position index. It must be
	// deterministic: the same entries in the same order leave every member
	// in the same state; time comes from e.At, never from a clock, and no
	// randomness is drawn.
	Apply(index uint64, e Entry) Result
	// Snapshot captures the state as of the last applied entry. It is
	// called between Applies and must be quick (copy or freeze, not
	// write); the Snapshot is written while Applies go on.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with one written by a Snapshot,
	// on a member that was too far behind or had lost its state. It
	// refuses data that does not decode and then leaves the state as it
	// was.
	Restore(r io.Reader) error
}

// Snapshot is a captured state being written out.
type Snapshot interface {
	// WriteTo writes the state; the consensus layer stores it and sends
	// it to members that need it.
	WriteTo(w io.Writer) (int64, error)
	// Release is called once the snapshot is no longer needed.
	Release()
}
