// Package sim is certmesh's network simulator: the topology file and its
// validation (docs/meshsim-model.md), a deterministic discrete-event
// scheduler over virtual time, the network model, the workload, the strategy
// plug-in interface, the gossip and raft baselines, and meshsim's report
// (docs/meshsim-model.md).
//
// # Determinism
//
// A run is a pure function of (topology, seed, strategy), in virtual time:
// events fire in order of (time, key) from heaps of value-typed events;
// randomness comes from math/rand/v2 PCG sources seeded from the run's
// seed, one for the workload and, per node, one for the node and one for
// the network's draws on what it sends, so that a node's draws do not
// depend on other nodes'. Nothing iterates over a map where order matters.
// Wall time is read only for Result.WallSeconds and progress.
//
// Global events (faults, the workload, drain checks) run on one goroutine.
// Between them the nodes of a parallelStrategy (mesh) are stepped by
// several goroutines, in windows of virtual time no longer than the
// smallest link delay, inside which no node can affect a node of another
// shard; the result is the same for any number of workers (parallel.go,
// Config.Workers).
//
// # Network model
//
// Each packet takes the one-way base delay of its region pair (latency.intra
// inside a region, the explicit link, or half of RTT = 4ms + great-circle
// km / 75 between locations, as in fly.io's Corrosion simulator) times
// uniform(1, 1+jitter), and is lost independently with probability loss;
// the topology's network section may make the loss bursty
// (Gilbert-Elliott), the jitter heavy-tailed (Pareto) and give each node an
// egress link of limited bandwidth with a FIFO queue (netmodel.go).
// Partitions block traffic between their groups of regions both ways, at
// sending and at arrival, and heal; a crashed node neither sends nor
// receives, its timers are cancelled, and it restarts through the
// strategy's Restart hook. Streams (Message.Reliable) are never lost:
// losses cost retransmission timeouts and partitions delay them until the
// heal, as the strategy's reconnect policy says (reconnect.go; Env.Send). Bytes and packets that carry state are counted per
// receiving node and per region pair. Membership is an oracle view (Env.Up)
// that learns of crashes and cuts membership.detection after they happen
// and of restarts and heals at once.
//
// # Strategies
//
// A strategy (Strategy, Node, Controller, Router) creates one Node per
// simulated node and acts only through its Env: Send, After, Up, and the
// workload's bookkeeping: Acked when a controller acknowledges a write,
// Applied when any node can enforce it, Answer for a router's admission
// decision, possibly after a pull. Strategies register by name (register):
// "gossip" and "raft" here, "mesh" (sim/mesh.go) runs the real crdt store
// and gossip core. The simulator may share immutable
// records among nodes; the Message payload is such a shared pointer. The
// mesh strategy has no impostors: a message's sender counts as proven
// where production proves it (gossip.NeedsProof), and the proof's bytes
// (a certificate and a signature, sim/meshproof.go) are counted and can
// send a message over a stream, as they do in production; no signature is
// made or checked. What signatures would cost can be charged instead: the
// CPU model (sim/cpu.go, mesh.cores and mesh.cpu_*, off by default) gives
// each node cores and a queue, so that verification, merges and signing
// delay the messages and writes behind them.
//
// # Workload and report
//
// Clients live in random regions, send each request to the nearest
// reachable controller and connect to a random router 1.5 round trips after
// they get their certificate; revoked certificates are tried too. The
// report's figures (docs/meshsim-model.md, "The report") are these: a pair is
// (write, router); its end-to-end delay, the headline, runs from the
// request reaching a controller to the router applying it, beside the
// physical bound of light in fibre (bounds.go); its sync delay runs from
// the write's acknowledgement; fault-free pairs give these, direct, excess
// and stretch, the others catch-up from the end of their fault. Quantiles
// are nearest-rank. Strategy parameters and topology settings have one
// table (params.go) for the topology file and meshsim --set; sweeps over
// settings and seeds aggregate with confidence intervals (sweep.go);
// export.go writes tidy CSV or JSON lines. docs/meshsim-model.md documents
// every assumption.
//
// # Driven runs
//
// RawRun is a run without the model's clock and network, in the manner of
// etcd raft's RawNode: the workload, the fault schedule and the report's
// bookkeeping, advanced by a driver that says what time it is and what its
// nodes did (rawrun.go). Live mode (package sim/live, meshsim --mode live)
// is such a driver: one real memberlist mesh per node on the wall clock,
// the same workload and the same report. This package exports what a
// driver needs besides: the records a write creates (WriteRecords), the
// verdict of a router's decision (VerdictOf), the partition schedule
// (Partitions) and the stream model (StreamLossDelay, StreamRetry,
// SynRTO), and Mix64, from which runs derive their random streams.
//
// Not modelled: client retries (a request lost with a crashed controller is
// lost), the time a controller takes to sign and persist, CPU limits of
// nodes, and receivers' bandwidth (senders' is an option).
package sim
