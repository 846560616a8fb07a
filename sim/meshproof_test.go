package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// The proof bytes the simulator counts are those of the certificates `pki
// init` issues, within a few bytes (the lengths of an ECDSA signature's
// integers vary).
func TestProofBytesMatchRealCertificates(t *testing.T) {
	now := time.Now()
	root, err := pki.NewRoot(pki.DefaultTrustDomain, time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{4, 12, 17, 24, 40} {
		name := strings.Repeat("n", n)
		r, err := pki.NewRouter(root, pki.DefaultTrustDomain, name, nil, time.Hour, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pki.NewController(root, pki.DefaultTrustDomain, name, time.Hour, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			role Role
			real int
		}{{RoleRouter, len(r.Cert.Raw)}, {RoleController, len(c.Cert.Raw)}} {
			est := certBytes(NodeInfo{Name: name, Role: tc.role})
			if d := est - tc.real; d < -4 || d > 4 {
				t.Errorf("%v named %d bytes: certificate of %d bytes, the simulator counts %d", tc.role, n, tc.real, est)
			}
		}
	}
}
