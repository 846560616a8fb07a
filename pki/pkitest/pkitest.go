// Package pkitest makes a whole PKI for a test in memory: a root, an
// intermediate per controller, a leaf per router and an admin certificate,
// each issued by the root as `certmesh pki init` issues them. The packages'
// own test helpers (trust/trusttest, router/routertest) build on it.
package pkitest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// PKI is a root and what it issued, by name.
type PKI struct {
	TrustDomain string
	Root        pki.KeyPair
	Controllers map[string]pki.KeyPair
	Routers     map[string]pki.KeyPair
	Admin       pki.KeyPair // named "admin"
	// Now is when it was made: every certificate is valid from then, the
	// root for twice validity, the others for validity.
	Now time.Time
}

// New makes a PKI of trustDomain at now, with the named controllers and
// routers.
func New(t testing.TB, trustDomain string, now time.Time, validity time.Duration, controllers, routers []string) *PKI {
	t.Helper()
	root, err := pki.NewRoot(trustDomain, 2*validity, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{TrustDomain: trustDomain, Root: root, Controllers: map[string]pki.KeyPair{}, Routers: map[string]pki.KeyPair{}, Now: now}
	for _, c := range controllers {
		if p.Controllers[c], err = pki.NewController(root, trustDomain, c, validity, now, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range routers {
		if p.Routers[r], err = pki.NewRouter(root, trustDomain, r, nil, validity, now, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	if p.Admin, err = pki.NewAdmin(root, trustDomain, "admin", validity, now, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return p
}
