package trust_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// The records the issuer writes come from here: a signer record with its
// certificate's name, key id and expiry, and a controller revocation kept
// until the root expires, with the writer's cut.
func TestRecordBodiesAreWhatTheIssuerWrites(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	p := trusttest.NewPKI(t, now, []string{"ctrl-a"}, []string{"edge-1"})
	inter := p.Ctrl["ctrl-a"]
	kid, err := pki.KeyID(inter.Cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := trust.NewSignerRecord(inter.Cert, trusttest.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	want := &crdt.SignerRecord{Controller: "ctrl-a", KeyID: kid, Cert: inter.Cert.Raw, NotAfter: crdt.MillisOf(inter.Cert.NotAfter)}
	if diff := cmp.Diff(want, sr); diff != "" {
		t.Errorf("signer record (-want +got):\n%s", diff)
	}
	for name, cert := range map[string]pki.KeyPair{"a router leaf": p.Routers["edge-1"], "the root": p.Root} {
		if _, err := trust.NewSignerRecord(cert.Cert, trusttest.TrustDomain); err == nil {
			t.Errorf("a signer record publishes %s", name)
		}
	}
	if _, err := trust.NewSignerRecord(inter.Cert, "elsewhere"); err == nil {
		t.Error("a signer record publishes a controller of another trust domain")
	}

	at := now.Add(-time.Minute)
	blob, err := pki.SignControllerRevocation(p.Root.Key, trusttest.TrustDomain, "ctrl-b", at)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := trust.CheckRevocation(p.Root.Cert, trusttest.TrustDomain, blob)
	if err != nil {
		t.Fatal(err)
	}
	cut := []crdt.AuthorContext{{Author: crdt.Author{Name: "ctrl-b", Incarnation: 3}, Max: 9}}
	got := rev.Record(cut)
	wantRev := &crdt.SignerRecord{Controller: "ctrl-b", Revoked: true, RevokedAt: crdt.MillisOf(at), RootSig: blob,
		NotAfter: crdt.MillisOf(p.Root.Cert.NotAfter), Cut: cut}
	if diff := cmp.Diff(wantRev, got); diff != "" {
		t.Errorf("revocation record (-want +got):\n%s", diff)
	}
	blob[0] ^= 1 // the record keeps its own copy
	if bytes.Equal(got.RootSig, blob) {
		t.Error("the record shares the caller's blob")
	}

	other, err := pki.SignControllerRevocation(p.Root.Key, "elsewhere", "ctrl-b", at)
	if err != nil {
		t.Fatal(err)
	}
	var de *trust.DomainError
	if _, err := trust.CheckRevocation(p.Root.Cert, trusttest.TrustDomain, other); !errors.As(err, &de) ||
		de.Got != "elsewhere" || de.Want != trusttest.TrustDomain {
		t.Errorf("a revocation for another trust domain: %v", err)
	}
}
