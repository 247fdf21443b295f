// Package replica is the replicated state machine of a momgate HA group
// (docs/HA.md), without the consensus library: the command every write of
// the server becomes (StateRecords, the records the write changed, in a
// versioned encoding with a strict decoder),
// the StateMachine interface the server's state implements (apply,
// snapshot, restore), and the sectioned snapshot container. It does no
// I/O beyond the readers and writers it is handed.
package replica
