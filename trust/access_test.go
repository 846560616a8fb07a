package trust_test

import (
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// Services, policies and identity roles are signed by the writing
// controller and verified like every other record: any controller may
// write them, a router may not, and an altered one is refused.
func TestAccessRecordsAreVerifiedByTheirAuthor(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a"}, []string{"edge-1"})
	store := crdt.NewStore()
	v, err := trust.NewVerifier(p.Root.Cert, trusttest.TrustDomain, func() *crdt.Store { return store })
	if err != nil {
		t.Fatal(err)
	}
	hlc := trusttest.FixedHLC(now)
	a := trusttest.NewAuthor(t, "ctrl-a", p.Ctrl["ctrl-a"].Key, hlc)
	if _, err := store.MergeVerified(a.Signer(p.Ctrl["ctrl-a"])); err != nil {
		t.Fatal(err)
	}
	recs := []crdt.Record{
		a.Sign(&crdt.ServiceRecord{Name: "echo", Address: "127.0.0.1:9000", Roles: []string{"web"}}),
		a.Sign(&crdt.PolicyRecord{Name: "ops", Identities: []string{"#ops"}, Services: []string{"#web"}}),
		a.Sign(&crdt.IdentityRolesRecord{Identity: "alice", Roles: []string{"ops"}}),
		a.Sign(&crdt.PolicyRecord{Name: "old", Deleted: true}),
	}
	for _, r := range recs {
		if err := crdt.Verify(r, v); err != nil {
			t.Fatalf("genuine %v refused: %v", r.Kind(), err)
		}
	}
	forged := *recs[1].(*crdt.PolicyRecord)
	forged.Identities = []string{"#all"}
	if err := crdt.Verify(&forged, v); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("altered policy: %v, want trust.ErrBadSignature", err)
	}
	byRouter := trusttest.NewAuthor(t, "ctrl-a", p.Routers["edge-1"].Key, hlc).
		Sign(&crdt.IdentityRolesRecord{Identity: "mallory", Roles: []string{"ops"}})
	if err := crdt.Verify(byRouter, v); !errors.Is(err, trust.ErrBadSignature) {
		t.Fatalf("roles signed by a router's key: %v, want trust.ErrBadSignature", err)
	}
}
