package gossip

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// Node authentication: a frame's sender is proven only by the key of a
// certificate the root issued for that very name, in a proof made for the
// receiving node (issue 13, "The principle to build").
//
//	go test ./gossip/ -run 'NodeAuth|ProvenFrame' -v

// authFixture is a PKI with two controllers and two routers, and the
// NodeAuth of each.
type authFixture struct {
	pki  *trusttest.PKI
	auth map[string]*NodeAuth
	now  time.Time
}

func newAuthFixture(t testing.TB) *authFixture {
	t.Helper()
	now := time.Now()
	f := &authFixture{pki: trusttest.NewPKI(t, now, []string{"ctrl-a", "ctrl-b"}, []string{"r1", "r2"}), auth: map[string]*NodeAuth{}, now: now}
	for name, kp := range f.pki.Ctrl {
		f.auth[name] = f.newAuth(t, name, RoleController, kp)
	}
	for name, kp := range f.pki.Routers {
		f.auth[name] = f.newAuth(t, name, RoleRouter, kp)
	}
	return f
}

func (f *authFixture) newAuth(t testing.TB, name string, role Role, kp pki.KeyPair) *NodeAuth {
	t.Helper()
	a, err := NewNodeAuth(f.pki.Root.Cert, trusttest.TrustDomain, name, role)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetIdentity(kp.Cert, kp.Key); err != nil {
		t.Fatal(err)
	}
	return a
}

// provenFrame returns the frame of m sent as from, proven by auth for recipient
// (unproven if auth is nil).
func provenFrame(t testing.TB, auth *NodeAuth, from, recipient string, m *Message) *Frame {
	t.Helper()
	b, err := EncodeFrame(from, m)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		if b, err = auth.Prove(b, recipient); err != nil {
			t.Fatal(err)
		}
	}
	f, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func syncReq(at time.Time) *Message {
	return &Message{Type: MsgSyncReq, SentAt: crdt.MillisOf(at), Context: crdt.Context{}}
}

func TestNodeAuthProvesOnlyTheCertifiedSenderToItsRecipient(t *testing.T) {
	f := newAuthFixture(t)
	recv := f.auth["ctrl-b"]
	now := f.now

	// Genuine: ctrl-a to ctrl-b, and r1 to ctrl-b.
	for _, c := range []struct {
		name string
		role Role
	}{{"ctrl-a", RoleController}, {"r1", RoleRouter}} {
		s, err := recv.Verify(now, provenFrame(t, f.auth[c.name], c.name, "ctrl-b", syncReq(now)), "ctrl-b")
		if err != nil || !s.Proven || s.Name != c.name || s.Role != c.role {
			t.Errorf("genuine frame of %s: %+v, %v", c.name, s, err)
		}
	}

	// A different root's PKI, same names.
	other := newAuthFixture(t)
	// An admin certificate of the real root.
	admin, err := pki.NewAdmin(f.pki.Root, trusttest.TrustDomain, "admin", time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A router of another trust domain under the real root.
	foreignTD, err := pki.NewRouter(f.pki.Root, "other.test", "r1", nil, time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// resign returns a frame sent as from, carrying cert and a proof made
	// with key for recipient.
	resign := func(from, recipient string, kp pki.KeyPair, m *Message) *Frame {
		b, err := EncodeFrame(from, m)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := pki.SignNodeProof(kp.Key, recipient, b)
		if err != nil {
			t.Fatal(err)
		}
		b, err = AppendProof(b, &Proof{Recipient: recipient, Cert: kp.Cert.Raw, Sig: sig})
		if err != nil {
			t.Fatal(err)
		}
		fr, err := ParseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		return fr
	}
	r1, ctrlA := f.pki.Routers["r1"], f.pki.Ctrl["ctrl-a"]
	tampered := provenFrame(t, f.auth["ctrl-a"], "ctrl-a", "ctrl-b", syncReq(now))
	tampered.Signed = bytes.Clone(tampered.Signed)
	tampered.Signed[len(tampered.Signed)-1] ^= 1
	forgedSig := provenFrame(t, f.auth["ctrl-a"], "ctrl-a", "ctrl-b", syncReq(now))
	forgedSig.Proof.Sig[10] ^= 1

	for _, c := range []struct {
		what string
		f    *Frame
		at   time.Time
	}{
		{"a proof made for another node (a captured frame, replayed)", provenFrame(t, f.auth["ctrl-a"], "ctrl-a", "r2", syncReq(now)), now},
		{"a proof made for any node, sent as a message", provenFrame(t, f.auth["ctrl-a"], "ctrl-a", "", syncReq(now)), now},
		{"a router's key and certificate under a controller's name", resign("ctrl-a", "ctrl-b", r1, syncReq(now)), now},
		{"a controller's certificate signed by a router's key", resign("ctrl-a", "ctrl-b", pki.KeyPair{Cert: ctrlA.Cert, Key: r1.Key}, syncReq(now)), now},
		{"a router's certificate under another router's name", resign("r2", "ctrl-b", r1, syncReq(now)), now},
		{"a certificate of another root", provenFrame(t, other.auth["ctrl-a"], "ctrl-a", "ctrl-b", syncReq(now)), now},
		{"an admin certificate", resign("admin", "ctrl-b", admin, syncReq(now)), now},
		{"a router of another trust domain", resign("r1", "ctrl-b", foreignTD, syncReq(now)), now},
		{"the root itself", resign("ctrl-a", "ctrl-b", f.pki.Root, syncReq(now)), now},
		{"a frame altered after it was signed", tampered, now},
		{"a signature altered", forgedSig, now},
		{"a certificate expired", provenFrame(t, f.auth["r1"], "r1", "ctrl-b", syncReq(now)), now.Add(13 * time.Hour)},
	} {
		s, err := recv.Verify(c.at, c.f, "ctrl-b")
		if s.Proven || !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: proven %v, err %v; want ErrBadProof", c.what, s.Proven, err)
		} else {
			t.Logf("%s: %v", c.what, err)
		}
	}

	// No proof, or no NodeAuth to check one with: not proven, not an error.
	if s, err := recv.Verify(now, provenFrame(t, nil, "ctrl-a", "ctrl-b", syncReq(now)), "ctrl-b"); s.Proven || err != nil {
		t.Errorf("unproven frame: %+v %v", s, err)
	}
	var none *NodeAuth
	if s, err := none.Verify(now, provenFrame(t, f.auth["ctrl-a"], "ctrl-a", "ctrl-b", syncReq(now)), "ctrl-b"); s.Proven || err != nil {
		t.Errorf("without NodeAuth: %+v %v", s, err)
	}
}

func TestNodeAuthIdentityMustBeThisNodes(t *testing.T) {
	f := newAuthFixture(t)
	a, err := NewNodeAuth(f.pki.Root.Cert, trusttest.TrustDomain, "r1", RoleRouter)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		kp   pki.KeyPair
	}{
		{"another router's certificate", f.pki.Routers["r2"]},
		{"a controller's intermediate", f.pki.Ctrl["ctrl-a"]},
		{"its certificate with another key", pki.KeyPair{Cert: f.pki.Routers["r1"].Cert, Key: f.pki.Routers["r2"].Key}},
	} {
		if err := a.SetIdentity(c.kp.Cert, c.kp.Key); err == nil {
			t.Errorf("%s accepted as r1's identity", c.what)
		}
	}
	if a.Proves() {
		t.Error("proves without an identity")
	}
	if err := a.SetIdentity(f.pki.Routers["r1"].Cert, f.pki.Routers["r1"].Key); err != nil || !a.Proves() {
		t.Fatalf("its own identity: %v", err)
	}
	// A new root drops an identity that does not chain to it.
	other := trusttest.NewPKI(t, f.now, nil, nil)
	if err := a.SetRoot(other.Root.Cert); err != nil || a.Proves() {
		t.Errorf("after a root change: err %v, proves %v", err, a.Proves())
	}
	// gossip/mesh refuses a NodeAuth of another node
	// (TestMeshRefusesTheNodeAuthOfAnotherNode).
}

func TestProvenFrameRoundTrip(t *testing.T) {
	f := newAuthFixture(t)
	for _, m := range sampleMessages(t) {
		plain, err := EncodeFrame("r1", m)
		if err != nil {
			t.Fatal(err)
		}
		b, err := f.auth["r1"].Prove(plain, "ctrl-a")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:len(plain)], plain) {
			t.Fatal("the proof changed the frame")
		}
		if n := len(b) - len(plain); n != ProofOverhead(len("ctrl-a"), len(f.pki.Routers["r1"].Cert.Raw)) {
			t.Errorf("%v: proof of %d bytes, ProofOverhead says %d", m.Type, n, ProofOverhead(len("ctrl-a"), len(f.pki.Routers["r1"].Cert.Raw)))
		}
		fr, err := ParseFrame(b)
		if err != nil {
			t.Fatalf("%v: %v", m.Type, err)
		}
		if fr.From != "r1" || fr.Proof == nil || fr.Proof.Recipient != "ctrl-a" || !bytes.Equal(fr.Signed, plain) ||
			!bytes.Equal(fr.Proof.Cert, f.pki.Routers["r1"].Cert.Raw) || fr.Msg.Size() != len(b) {
			t.Errorf("%v: parsed %+v", m.Type, fr)
		}
		// DecodeFrame reads the same message, ignoring the proof.
		from, dm, err := DecodeFrame(b)
		if err != nil || from != "r1" || dm.Type != m.Type {
			t.Errorf("%v: DecodeFrame %q %v %v", m.Type, from, dm, err)
		}
		if s, err := f.auth["ctrl-a"].Verify(f.now, fr, "ctrl-a"); err != nil || !s.Proven {
			t.Errorf("%v: %+v %v", m.Type, s, err)
		}
	}
	// Fields a newer minor appends to the trailer are skipped.
	plain, _ := EncodeFrame("r1", syncReq(f.now))
	b, _ := f.auth["r1"].Prove(plain, "ctrl-a")
	b[len(plain)] = 0x93 // the trailer: 3 fields
	b = append(b, 0xc0, 0x2a)
	if fr, err := ParseFrame(b); err != nil || fr.Proof == nil {
		t.Errorf("a trailer with fields from a newer minor: %v", err)
	}
	// A 1.0 frame has no trailer: trailing bytes are refused.
	old := bytes.Clone(b)
	old[0] = ProtocolMajor << 4
	if _, err := ParseFrame(old); !errors.Is(err, ErrMalformed) {
		t.Errorf("a 1.0 frame with a trailer: %v", err)
	}
}

// BenchmarkNodeProof measures what proving a frame costs: the bytes a
// proof adds, and the time to sign one and to check one (certificate
// cached, as it is after a peer's first frame).
//
//	go test ./gossip/ -run '^$' -bench NodeProof -benchmem
func BenchmarkNodeProof(b *testing.B) {
	f := newAuthFixture(b)
	for _, c := range []struct {
		name string
		m    *Message
	}{
		{"sync_req", syncReq(f.now)},
		{"want_resp", &Message{Type: MsgWantResp, SentAt: crdt.MillisOf(f.now), WantID: 1 << 60, Serial: crdt.Serial{1}, Authoritative: true}},
	} {
		for _, sender := range []string{"r1", "ctrl-a"} {
			plain, err := EncodeFrame(sender, c.m)
			if err != nil {
				b.Fatal(err)
			}
			proven, err := f.auth[sender].Prove(plain, "ctrl-b")
			if err != nil {
				b.Fatal(err)
			}
			fr, err := ParseFrame(proven)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(c.name+"/"+sender+"/sign", func(b *testing.B) {
				for b.Loop() {
					if _, err := f.auth[sender].Prove(plain, "ctrl-b"); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/proof")
				b.ReportMetric(float64(len(proven)-len(plain)), "proof_bytes")
				b.ReportMetric(float64(len(plain)), "frame_bytes")
			})
			b.Run(c.name+"/"+sender+"/verify", func(b *testing.B) {
				for b.Loop() {
					if s, err := f.auth["ctrl-b"].Verify(f.now, fr, "ctrl-b"); err != nil || !s.Proven {
						b.Fatal(s, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/proof")
			})
		}
	}
	b.Run("first_frame_of_a_peer", func(b *testing.B) {
		// The certificate is parsed and its chain checked once per peer.
		plain, _ := EncodeFrame("r1", syncReq(f.now))
		proven, _ := f.auth["r1"].Prove(plain, "ctrl-b")
		fr, _ := ParseFrame(proven)
		for b.Loop() {
			a, _ := NewNodeAuth(f.pki.Root.Cert, trusttest.TrustDomain, "ctrl-b", RoleController)
			if s, err := a.Verify(f.now, fr, "ctrl-b"); err != nil || !s.Proven {
				b.Fatal(s, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/proof")
	})
}
