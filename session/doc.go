// Package session is momgate's sealed-session core (docs/PROTOCOL.md
// section 6): the session extension of the PING swap, the transcript and
// key schedule that turn a swap into two directional session keys, the
// record layer that seals every later frame with a strict per-direction
// counter, and the rekey state machine that replaces the keys before a
// counter or age limit without dropping the connection.
//
// Everything here is pure: no sockets, no files, no goroutines. Randomness
// and the clock are parameters; Conn is the only type that touches an
// io.Reader or io.Writer, and it is handed them by the daemon.
package session
