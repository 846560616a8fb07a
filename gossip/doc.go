// Package gossip is certmesh's dissemination protocol: the pure core that
// carries the replicated state between nodes, kept apart from the I/O that
// drives it, as in etcd-io/raft.
//
// Core is a single-threaded state machine with no I/O, no clock and no
// randomness of its own (the driver injects a seeded Rand). Its inputs are
// local writes (Publish), received messages (Step), the passage of time
// (Tick, carrying now) and membership changes (SetMember, RemoveMember);
// its outputs leave through Ready: messages to send, records applied,
// pulls resolved. Two drivers run the very same Core: gossip/mesh over
// github.com/hashicorp/memberlist (membership, failure detection,
// encryption; the only code that touches the network), and the simulator
// in sim/, in virtual time. deps_test.go checks that the package reads no
// clock, draws no random numbers and does no I/O.
//
// The package also owns the wire format (Encode, EncodeFrame, ParseFrame),
// the region trees, the membership View the core steers by, and who is
// speaking: Sender, NeedsProof and NodeAuth, which signs and checks the
// proofs in frames (a pure check of bytes against the root, at a time the
// caller passes in). Its files:
//
//   - core.go: the Core, its inputs (Step, Tick) and outputs (Ready);
//   - stepping.go: a message stepped a slice of records at a time
//     (Begin, Ingest, Finish), so a driver may let go of its lock
//     between slices;
//   - config.go: Config and the roles;
//   - push.go: Publish and the eager and lazy push along the trees;
//   - ingest.go: verifying, merging and holding received records;
//   - repair.go: fast repair of gaps;
//   - antientropy.go: anti-entropy exchanges and readiness (Synced);
//   - want.go: pull on miss;
//   - clock.go: clock samples and the offset estimate;
//   - peers.go: membership and per-peer state;
//   - tree.go, view.go: the region trees and the membership view;
//   - wire.go: the wire format; nodeauth.go: sender proofs.
//
// The protocol (docs/architecture.md):
//
//  1. Eager push along per-region trees. A write's origin sends the batch to
//     the root of two trees in every region (itself in its own region); each
//     node forwards to its children in the tree the copy came by. A batch
//     crosses each region boundary twice and reaches every node twice, over
//     independent parents, so one lost packet costs no repair round. The
//     trees are laid out from the batch id over the region's members sorted
//     by name, O(1) per message, as in the deterministic relays of fly.io's
//     Corrosion; Plumtree's eager/lazy split (Leitão et al. 2007) is the
//     general form. Config.EagerTrees 1 makes the second tree lazy: it
//     carries the batch's dots, a node missing them pulls them after
//     LazyDelay, and the two roots of a region pass each batch to one
//     another so that both trees start together (about 35% fewer bytes for
//     a slightly longer tail; two eager trees are the default).
//  2. Coalescing: the records of one Publish travel in as few packets as
//     PacketBudget allows (memberlist's UDP budget after label and
//     encryption).
//  3. Fast repair: a record whose seq leaves a gap behind it in its author's
//     version triggers, after RepairDelay, a repair request for the gap to
//     the node that delivered it.
//  4. Anti-entropy: every AntiEntropyInterval, a node sends its causal
//     context to one peer (the least recently synced; every third round one
//     in another region) and receives what it lacks, revocations first, then
//     oldest first, at most AntiEntropyBudget bytes, over the reliable path;
//     the peer asks back when the node has what it lacks (push-pull).
//  5. Pull on miss: Want asks the controller that issued a certificate, and
//     at the same time one nearby node, then everybody else, and resolves
//     with the record or the issuer's authoritative "not issued", which
//     counts only as a proven answer to the random want id it was asked.
//     Concurrent wants collapse; a short negative cache absorbs floods of
//     unknown certs.
//  6. Every received record is verified (crdt.Verify with the injected
//     Verifier) before merge. Records whose signer is not yet known, or
//     whose HLC is too far ahead, are held (bounded) and retried. Forged,
//     malformed and oversized input is dropped and counted, never panicked on;
//     a push holding a record that does not verify is not relayed, so a
//     forgery stops at the first honest node. Role and region in membership
//     steer paths, never trust.
//  7. Wire format: one protocol version byte, then msgpack; message type
//     numbers are append-only, and so are the fields of a frame's trailer
//     (since 1.1, sent only to peers that announce 1.1 or later); every
//     length read from the wire is capped.
//  8. Who is speaking: the gossip key keeps strangers out, but any holder
//     of it can write any sender name into a frame. A node proves the
//     frames whose sender matters (NeedsProof: sync requests, memberlist
//     push-pulls, "not found" answers) with the key of the certificate
//     `pki init` gave it (a router leaf or a controller intermediate,
//     issued by the root), in the frame's trailer, bound to the
//     recipient's name; NodeAuth checks it. A proven Sender is one whose
//     frame carried such a proof, made for this node, no older than the
//     last taken from it (a push-pull's proof, made for any node, must
//     also be within the max offset of this node's clock). Only proven
//     senders' word counts: clock samples, an issuer's "not issued", pull
//     waves, readiness, lag. Per-peer state exists only for live members
//     and goes with them. Unproven frames still carry signed records, so
//     pushes, deltas and repairs work from anyone: a key holder can slow
//     dissemination within what loss already costs, not stop writes, deny
//     valid clients or grow memory.
//
// What a record is worth is not decided here: the production verifier is
// trust.Verifier (trust comes from the root CA alone), and the core holds
// a record refused with trust.ErrUnknownSigner until its author's signer
// record arrives.
package gossip
