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
//   - session and cert facts are write-once: when two records claim the
//     same key, the earliest by (HLC, author, seq) wins everywhere;
//   - except a session's expiry, a max register over its records
//     (SessionExpires): a session bound to its login token is extended by
//     another record for its id with a later Expires;
//   - a cert's superseded time is the minimum over the certs that rotate it;
//   - a revocation is its own record and binds its target even when it
//     arrives first (revoke wins, forever);
//   - an identity revocation is a max register on revoked_before;
//   - a signer's status is the lattice active < revoked; revoked absorbs,
//     and the sessions, certificates and signer keys its author wrote after
//     the revocation are dropped by every replica alike, so they converge.
//     Revocations are never dropped: revoking is fail-safe, and nothing
//     that arrives later makes a revoked session or certificate admissible;
//   - services, policies and identity roles (access_record.go) are
//     last-writer-wins registers per name, the latest by (HLC, author,
//     seq) winning; a delete is a tombstone record. An index of what the
//     current policies grant, per service, is kept exact as records come
//     and go, so that Access answers in a few map lookups (access.go).
//
// Every index is a function of the set of records held, kept exact as
// records come and go, so the state a Store reaches depends only on which
// records it was given, not on their order or multiplicity: merge is
// commutative, associative and idempotent. Property tests check the Store
// against a naive reference model of the set.
//
// Anti-entropy (DeltaSince, CoverInterval) sends what a peer lacks,
// revocations first, then oldest first, with intervals (author, from, to]
// that keep the peer's version vector exact when some records in them were
// collected. A receiver accepts a gap in an interval only when a later
// record of the same author, held there, is older than MinRetention, so a
// peer cannot make it skip a recent record by withholding it. Nothing is
// held more than MaxSeqAhead above an author's contiguous seq.
//
// Garbage collection (Collect) is local: a record goes once it cannot
// matter anywhere (its expiry plus the clock offset plus a grace, and
// MinRetention after it was written). Its dot stays covered, so it never
// comes back. A revocation's expiry is that of what it covers, read from
// the records held, or, when none is held, its time plus
// MaxSessionLifetime, the mesh-wide bound on sessions: never the
// revoking controller's own config, so it outlives a session created at a
// controller configured for longer ones (Retention has the whole rule, which
// controllers also apply to their disks). Records dropped for a revoked
// author are kept aside until they expire too, so that peers that never saw
// them can cover their dots.
//
// The digest is an XOR of record hashes, updated at every change, for
// convergence checks; snapshots are versioned msgpack for persistence and
// bootstrap.
//
// Timestamps are hybrid logical clocks (Kulkarni et al., "Logical Physical
// Clocks", 2014). The package is pure: it reads no clock, draws no random
// numbers and does no I/O. Time comes in as arguments, signatures go through
// the Signer and Verifier interfaces, and keys live elsewhere.
//
// A Store is not safe for concurrent use; its owner serialises access.
// Merging interns a record's repeated strings (identities, methods, names):
// it may replace a string field by an equal one, never changing a value, so
// a record shared by several stores must not be merged by them
// concurrently.
package crdt
