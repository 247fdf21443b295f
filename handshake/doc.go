// Package handshake is the protocol's handshakes, both halves, pure over
// an io.ReadWriter and the connection's two addresses (docs/PROTOCOL.md
// sections 3.5, 4.1, 4.2 and 4.5):
//
//   - swap.go: the PING swap, initiator (Initiate) and responder (Respond);
//   - server.go: the server half of a control connection (Serve): ServerHello,
//     Enroll or Hello or LegacyHello, Welcome, the swap;
//   - mom.go: the MOM half of a control connection (ReadServerHello, Prove,
//     Keyring; then Initiate);
//   - im.go: the responder's admission of an IM connection from its first
//     frame (ReadFirstFrame, AdmitIM): the version decision, then the swap;
//   - rejection.go: refusals (Rejection) with their reasons and Reject frames.
//
// Randomness and the clock are parameters, and deadlines are the caller's:
// the daemons set them on their connections before calling in. The package
// does no other I/O than reading and writing the frames of the exchange.
package handshake
