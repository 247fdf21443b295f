// Package ping seals and opens momgate PINGs (docs/PROTOCOL.md section 3),
// stamps them with a timestamp that never goes backwards, and guards
// receivers against replay.
//
// The package does no I/O: keys, clocks, randomness and persistence are
// passed in, so every path is testable in memory.
package ping
