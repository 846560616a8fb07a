// Package issuer is the certmesh controller (docs/deploy.md): it
// authenticates clients with OIDC or external JWT signers, issues their
// session certificates from the controller's intermediate CA, and writes
// every issuance, rotation and revocation as a signed record into the
// replicated state, durably, before it answers.
//
// A Controller is opened on its data directory (Open: keys, bbolt store,
// and the records reloaded into a crdt.Store), then started on a gossip
// mesh built over that store (Start: the HTTPS API, the plain-HTTP metrics
// listener, the controller's signer record). Reload re-reads key files on
// SIGHUP (the token verifier it rebuilds replaces the one in use only once
// it has discovered every OIDC issuer); Close shuts it down gracefully.
//
// With session.bind_to_token a session ends when its login token expires
// unless the client presents a fresh token for it (token.go): the creating
// controller writes another session record with the later expiry.
//
// Invariants:
//   - A dot is never reused. The author is the node name plus an
//     incarnation drawn at random when the data directory's store is first
//     created. Dots and HLC timestamps are taken under one mutex, so an
//     author's seq order is its HLC order; records are committed to bbolt in
//     seq order, in group commits, and only then published, so the next seq
//     on disk is above every seq ever sent, and a crash loses nothing that
//     was acknowledged (see writer).
//   - Records received from peers are persisted asynchronously, with the
//     coverage of their dots, so a restart reloads them and anti-entropy
//     fetches the rest.
//   - Authority comes from verified chains only: a client's session from
//     the SPIFFE URI of a leaf that verifies against the root (through its
//     own intermediate or one known from signer records); an admin from the
//     admin URI SAN of a leaf issued directly by the root (pki.AdminOf),
//     never from a CN.
//   - A controller whose clock is off from the mesh by more than half the
//     max offset refuses writes (503 clock_skew): its HLC timestamps would
//     be held by its peers.
//
// Sources: docs/architecture.md; Kulkarni et al.,
// "Logical Physical Clocks" (2014) for the HLC.
package issuer
