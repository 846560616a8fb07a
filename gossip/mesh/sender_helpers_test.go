package mesh

import (
	"testing"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/pki"
)

// Helpers of the tests that send as a key holder would
// (mesh_hostile_test.go).

// proveWith returns frame with a proof made for recipient by kp's key,
// carrying kp's certificate, whosever name the frame claims: what a
// holder of that key can send.
func proveWith(t testing.TB, kp pki.KeyPair, frame []byte, recipient string) []byte {
	t.Helper()
	sig, err := pki.SignNodeProof(kp.Key, recipient, frame)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gossip.AppendProof(frame, &gossip.Proof{Recipient: recipient, Cert: kp.Cert.Raw, Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// proveAs returns frame as node m proves it for recipient: what m sends.
func proveAs(t testing.TB, m *Mesh, frame []byte, recipient string) []byte {
	t.Helper()
	b, err := m.cfg.Auth.Prove(frame, recipient)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// senderState counts m's per-sender entries: the core's peers and
// exchanges, and the mesh's last proven frame times.
func senderState(m *Mesh) (peers, exchanging, proven int) {
	m.mu.Lock()
	fp := m.core.Footprint()
	m.mu.Unlock()
	m.proofMu.Lock()
	proven = len(m.lastProven)
	m.proofMu.Unlock()
	return fp.Peers, fp.Exchanging, proven
}

// pullState returns the want id of m's pull of serial and the nodes it
// waits for, sorted; none if no pull is in flight.
func pullState(m *Mesh, serial crdt.Serial) (uint64, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, waiting, _ := m.core.Pull(serial)
	return id, waiting
}
