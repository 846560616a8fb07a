// Package live is meshsim's live mode (meshsim --mode live,
// docs/meshsim.md, "Live mode"): the "mesh" strategy through the
// production code path, one gossip/mesh Mesh over real memberlist per
// simulated node, on an in-memory memberlist transport with the model's
// network (latency, jitter, loss, partitions; net.go), driven by the
// model's workload in wall time (a sim.RawRun) and reported with the
// model's definitions (live.go).
//
// It is not deterministic, and it costs its duration in wall time: it
// shows that the memberlist integration behaves like the model, which
// package sim simulates deterministically in virtual time. Its nodes have
// no node identities (their names are not PKI names), so they prove
// nothing and no sender is proven to them: no clock estimate, no issuer's
// "not issued", readiness by the fallback for meshes without proofs.
package live
