package trust

import (
	"testing"

	"github.com/certmesh/certmesh/internal/deptest"
)

// trust decides what a record is worth from the record and the root alone:
// it reads no clock, does no I/O, and sits below everything that moves or
// stores records.

func TestTrustDependsOnlyOnCrdtAndPki(t *testing.T) {
	deptest.Forbid(t, "trust", false,
		"github.com/hashicorp/memberlist", // the mesh is gossip/mesh's
		"go.etcd.io/bbolt",                // persistence is the issuer's
		"net/http", "os/exec",
		"./gossip", "./router", "./issuer", "./sim", "./node", "./devcluster", "./cmd")
}

func TestTrustReadsNoClockAndDoesNoIO(t *testing.T) {
	deptest.CheckPure(t, "trust", nil)
}
