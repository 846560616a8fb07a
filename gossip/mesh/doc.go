// Package mesh runs certmesh's gossip protocol over
// github.com/hashicorp/memberlist: it is the adapter that drives a
// gossip.Core with real membership (SWIM and Lifeguard), failure detection,
// the AES-GCM keyring and UDP packets and TCP streams, and the only code in
// certmesh that touches memberlist or the mesh's network. Its files:
//
//   - mesh.go: the Mesh, its start and shutdown, and what the issuer and
//     the router call (Publish, Now, View, Subscribe, Want, ClockOffset);
//   - ready.go: readiness (Readiness, Ready): what makes a controller and a
//     router ready, and a join its seeds refuse;
//   - config.go: Config, its defaults and memberlist's configuration;
//   - loop.go: the loop, the one goroutine that runs the core, and the
//     bounded queue that feeds it;
//   - send.go: sending the core's messages, as packets or over streams;
//   - membership.go: members coming and going, joining the seeds and
//     reconnecting to failed members;
//   - delegate.go: memberlist's delegates and the node metadata;
//   - check.go: the check stage, where received frames' sender proofs and
//     records' signatures are checked on every core before the loop;
//   - meshproof.go: sender proofs and the replay rule;
//   - conflict.go: a newcomer that finds its name taken;
//   - keys.go: the gossip keyring file;
//   - metrics.go: counters and Prometheus metrics.
//
// What a mesh sends and when is the core's: see package gossip for the
// protocol. A Mesh serves the issuer and the router: Publish, Now, View,
// Subscribe, Want, Ready, Members, ClockOffset.
//
// Invariants:
//   - One goroutine, the loop, calls into the gossip.Core. memberlist's
//     delegates never block and never wait for it: they decode and queue
//     (messages in a bounded queue that drops and counts), and membership
//     events are queued in order with the messages.
//   - The loop holds the mesh's lock while it runs the core, and sends
//     nothing and calls no subscriber while holding it, so subscribers may
//     call View and memberlist's locks never nest inside the mesh's.
//   - The data plane never waits behind the control plane: admission
//     lookups (View) take the mesh's lock, so nothing that costs crypto or
//     visits the whole store is done under it. Records' signatures are
//     checked by the check stage on GOMAXPROCS workers before the loop
//     (gossip.Prechecker), leaving a confirmation of a few map lookups per
//     record under the lock; the loop lets go of the lock every
//     maxRecordsPerHold records, within a long message too
//     (gossip.Stepping); the messages the core sends are encoded after the
//     lock (gossip.Config.EncodeLater); garbage collection runs in steps of
//     collectStepRecords records (crdt.Collection); Now (the writer's HLC)
//     takes no lock of the mesh's at all.
//   - memberlist's user messages do not carry their sender, so each travels
//     in a frame naming it (gossip.EncodeFrame). Alone, the name only tells
//     where answers go; what a message carries is verified on its own, and
//     the sender's word counts only with a proof (gossip.NodeAuth; item 8
//     of the gossip package doc). Proofs are checked off the loop and never
//     under the mesh's lock: by the check stage behind a bounded queue, and
//     by memberlist's push-pull goroutines; a frame whose proof fails is
//     counted (bad_proof, stale_proof) and handled as unproven.
//   - memberlist's push-pull (on join, and every PushPullInterval) carries a
//     node's causal context, never its state; each side answers the other's
//     context with what it lacks (gossip.Core.PeerState), so a joining or
//     restarted node catches up at once, at a cost that follows the
//     difference.
//   - Readiness (docs/deploy.md) latches once the core completed an
//     exchange with a proven peer (gossip.Core.Synced), or no seed other
//     than the node itself answered within JoinTimeout; an exchange with an
//     unproven member counts only where no peer has proven itself by
//     JoinTimeout (a 1.1 node among 1.0 nodes, or a mesh without
//     identities).
package mesh
