package mesh

import "github.com/certmesh/certmesh/gossip"

// BatchSigning reports whether a controller may sign its records in
// batches (crdt.SignBatch): a batch-signed record ends with a proof that a
// node of protocol 1.1 or earlier cannot decode, so only while this node
// knows other members and every alive one announces 1.2 or later. A
// member that joins later running older code refuses the batch-signed
// records it is sent (counted as malformed) until it is upgraded; the
// records signed alone meanwhile reach it.
func (m *Mesh) BatchSigning() bool { return m.allAnnounce(gossip.MinorBatchSig) }
