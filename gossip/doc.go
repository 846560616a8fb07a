// Package gossip carries certmesh's replicated state between nodes.
//
// It has two parts, kept apart as in etcd-io/raft:
//
//   - Core is the protocol: a single-threaded state machine with no I/O and
//     no clock. Its inputs are local writes (Publish), received messages
//     (Step), the passage of time (Tick, carrying now) and membership changes
//     (SetMember, RemoveMember); its outputs leave through Ready: messages to
//     send, records applied, pulls resolved. The simulator in sim/ drives the
//     very same Core in virtual time.
//   - Mesh is the adapter that runs a Core over github.com/hashicorp/memberlist
//     (membership, failure detection, encryption) and is the only code here
//     that touches memberlist or the network.
//
// The protocol (see ARCHITECTURE.md, "Dissemination"):
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
//
// Mesh invariants:
//   - One goroutine, the loop, calls into the Core. memberlist's delegates
//     never block and never wait for it: they decode and queue (messages in
//     a bounded queue that drops and counts), and membership events are
//     queued in order with the messages.
//   - The loop holds the mesh's lock while it runs the core, and sends
//     nothing and calls no subscriber while holding it, so subscribers may
//     call View and memberlist's locks never nest inside the mesh's.
//   - memberlist's user messages do not carry their sender, so each travels
//     in a frame naming it (EncodeFrame). Alone, the name only tells where
//     answers go; what a message carries is verified on its own, and the
//     sender's word counts only with a proof (item 8). Proofs are checked
//     off the loop and never under the mesh's lock: by a verifier
//     goroutine behind a bounded queue, and by memberlist's push-pull
//     goroutines; a frame whose proof fails is counted (bad_proof,
//     stale_proof) and handled as unproven.
//   - memberlist's push-pull (on join, and every PushPullInterval) carries a
//     node's causal context, never its state; each side answers the other's
//     context with what it lacks (Core.PeerState), so a joining or restarted
//     node catches up at once, at a cost that follows the difference.
//   - Readiness (SPEC.md section 3) latches once the core completed an
//     exchange with a proven peer (Core.Synced), or no seed other than the
//     node itself answered within JoinTimeout; an exchange with an unproven
//     member counts only where no peer has proven itself by JoinTimeout (a
//     1.1 node among 1.0 nodes, or a mesh without identities).
package gossip
