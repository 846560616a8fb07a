// Package crdt holds certmesh's replicated state: the records that
// controllers write for every session, certificate, revocation and signer,
// and the rules by which any two replicas merge.
//
// The state is a delta-state CRDT with causal context (Almeida, Shoker and
// Baquero, "Delta State Replicated Data Types", 2018). Every write is one
// immutable Record identified by its dot (author, seq). A Store keeps the
// records it holds, a version vector of the highest contiguous seq per author
// and the out-of-order dots above it, and indexes derived from the records:
//
//   - session and cert facts are write-once;
//   - a cert's superseded time is the minimum over the certs that rotate it;
//   - a revocation is its own record and binds its target even when it
//     arrives first (revoke wins, forever);
//   - an identity revocation is a max register on revoked_before;
//   - a signer's status is the lattice active < revoked; revoked absorbs,
//     and the sessions, certificates and signer keys its author wrote after
//     the revocation are dropped by every replica alike, so they converge.
//     Revocations are never dropped: revoking is fail-safe, and nothing
//     that arrives later makes a revoked session or certificate admissible.
//
// Because every index is a join over the set of held records, the state a
// Store reaches depends only on which records it was given, not on their
// order or multiplicity: merge is commutative, associative and idempotent.
//
// Timestamps are hybrid logical clocks (Kulkarni et al., "Logical Physical
// Clocks", 2014). The package is pure: it reads no clock, draws no random
// numbers and does no I/O. Time comes in as arguments, signatures go through
// the Signer and Verifier interfaces, and keys live elsewhere.
//
// A Store is not safe for concurrent use; its owner serialises access.
package crdt
