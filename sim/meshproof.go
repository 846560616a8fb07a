package sim

import "github.com/certmesh/certmesh/gossip"

// The bytes of node proofs. A production node proves the frames whose
// sender matters (gossip.NeedsProof: anti-entropy requests and "not found"
// answers) with a trailer holding its certificate and a signature
// (gossip.NodeAuth). The simulator has no impostors and verifies no
// proof, but counts its bytes, and sends a message over a stream where
// the proof makes it too large for a packet, as the mesh does.

// Sizes of the DER certificates `pki init` issues in trust domain
// "certmesh", by the length of the node's name: a router's leaf holds the
// name three times (subject, DNS name, URI) and the services' wildcard
// *.svc.certmesh, a controller's intermediate twice.
// TestProofBytesMatchRealCertificates checks them against pki.
const (
	routerCertBase     = 483
	routerCertPerByte  = 3
	controllerCertBase = 472
	controllerCertByte = 2
)

// certBytes is the size of the certificate of node n.
func certBytes(n NodeInfo) int {
	if n.Role == RoleController {
		return controllerCertBase + controllerCertByte*len(n.Name)
	}
	return routerCertBase + routerCertPerByte*len(n.Name)
}

// proofBytes is what the proof of a frame n sends to adds to it.
func proofBytes(n NodeInfo, to string) int {
	return gossip.ProofOverhead(len(to), certBytes(n))
}
