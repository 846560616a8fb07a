package pki

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// pki is the certificate authority and the signature formats: it knows
// nothing of the records it signs (crdt, trust) or of the nodes that use
// it.
func TestPkiKnowsNoRecordsAndNoNodes(t *testing.T) {
	deptest.Forbid(t, "pki", false,
		"github.com/hashicorp/memberlist", "go.etcd.io/bbolt",
		"./crdt", "./trust", "./gossip", "./router", "./issuer", "./sim", "./node", "./devcluster", "./cmd")
}
