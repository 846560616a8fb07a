package gossip

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// Who is speaking (docs/reliability.md, "Faults and attacks"). The gossip key
// keeps strangers out of the mesh, but any holder of it (every router) can
// write any sender name into a frame. Nodes therefore prove the frames
// whose sender matters (NeedsProof) with the keys `pki init` already gives
// each of them: a router's leaf (spiffe://<td>/router/<name>) and a
// controller's intermediate (spiffe://<td>/controller/<name>), both issued
// by the root. memberlist does not tell a delegate which member a message
// came from, so the proof travels in the frame (EncodeFrame's trailer) and
// binds the recipient's name: a frame captured by one node proves nothing
// to another.

// Sender is who sent a message, as far as its receiver can tell.
type Sender struct {
	// Name is the sender's name as its frame claims it: where answers
	// go. Anyone holding the gossip key can write any name.
	Name string
	// Proven: the frame carried a proof by the key of a certificate the
	// root issued for Name, made for this node, and no older than the
	// last frame taken from Name (NodeAuth). Only proven senders count
	// where the sender's word is trusted: clock samples, an issuer's
	// "not issued", readiness and per-peer bookkeeping.
	Proven bool
	// Role is the role the certificate proves (a controller intermediate
	// or a router leaf); zero unless Proven.
	Role Role
}

// NeedsProof reports whether a node proves its frames of m to their
// recipient: anti-entropy requests (their clock sample and causal context
// count only from a proven sender) and "not found" answers to pulls (only
// the issuing controller's settles one). Other messages carry signed
// records, which are verified on their own, or ask for them.
func NeedsProof(m *Message) bool {
	return m.Type == MsgSyncReq || m.Type == MsgWantResp && !m.Found
}

// Errors of NodeAuth.Verify. The mesh counts them in
// certmesh_rejected_records_total under reasons "bad_proof" and
// "stale_proof", and takes the frame as unproven.
var (
	// ErrBadProof: the proof is not by the key of a root-issued
	// certificate of the sender, or not for this node.
	ErrBadProof = errors.New("gossip: bad sender proof")
	// ErrStaleProof: the frame is older than the last one taken from the
	// same sender (a replay), or, made for any recipient, too far from
	// this node's clock.
	ErrStaleProof = errors.New("gossip: stale sender proof")
)

// maxNodeCertCache caps the parsed node certificates a NodeAuth keeps, the
// verdicts on bad ones included: one per member of a large mesh.
const maxNodeCertCache = 1 << 14

// NodeAuth signs this node's proofs and verifies its peers'. Trust comes
// from the root alone: a peer's certificate must be issued directly by the
// root, name a controller (an intermediate, a CA) or a router (a leaf) of
// the trust domain whose name is the frame's sender, hold an ECDSA P-256
// key, and be valid (within the root's validity) when the frame arrives.
// Parsed certificates are cached by digest, bad ones too. A NodeAuth is
// safe for concurrent use; it never takes the mesh's lock.
type NodeAuth struct {
	trustDomain string
	name        string // this node's
	role        Role

	mu    sync.Mutex // guards root, roots, self and certs
	root  *x509.Certificate
	roots *x509.CertPool
	self  *nodeIdentity // nil: this node sends unproven frames
	certs map[[32]byte]*nodeCert
}

// nodeIdentity is this node's key and certificate.
type nodeIdentity struct {
	key crypto.Signer
	der []byte
}

// nodeCert is a parsed, chain-checked node certificate, or why it proves
// nothing.
type nodeCert struct {
	name string
	role Role
	pub  *ecdsa.PublicKey
	// from and until bound when it proves anything: its validity within
	// the root's.
	from, until time.Time
	err         error
}

// NewNodeAuth returns a NodeAuth for node name of role, trusting root for
// trustDomain. Until SetIdentity it verifies its peers' proofs but proves
// nothing itself.
func NewNodeAuth(root *x509.Certificate, trustDomain, name string, role Role) (*NodeAuth, error) {
	if err := pki.ValidateTrustDomain(trustDomain); err != nil {
		return nil, fmt.Errorf("gossip: node auth: %w", err)
	}
	if name == "" || role != RoleController && role != RoleRouter {
		return nil, fmt.Errorf("gossip: node auth: node %q of role %v", name, role)
	}
	a := &NodeAuth{trustDomain: trustDomain, name: name, role: role}
	if err := a.SetRoot(root); err != nil {
		return nil, err
	}
	return a, nil
}

// Name and Role are the node's, as NewNodeAuth was given them: whose frames
// it proves.
func (a *NodeAuth) Name() string { return a.name }
func (a *NodeAuth) Role() Role   { return a.role }

// SetRoot replaces the trusted root, as on a reload of the CA file, and
// forgets every cached certificate. This node's own identity is dropped if
// its certificate does not chain to the new root (a proof no peer can
// verify is worth nothing): set the new one with SetIdentity.
func (a *NodeAuth) SetRoot(root *x509.Certificate) error {
	if root == nil {
		return errors.New("gossip: node auth: no root certificate")
	}
	if !root.IsCA {
		return fmt.Errorf("gossip: node auth: root %q is not a CA", root.Subject.CommonName)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	a.mu.Lock()
	a.root, a.roots = root, pool
	a.certs = make(map[[32]byte]*nodeCert)
	self := a.self
	a.mu.Unlock()
	if self != nil && a.cert(self.der).err != nil {
		a.mu.Lock()
		if a.self == self {
			a.self = nil
		}
		a.mu.Unlock()
	}
	return nil
}

// SetIdentity gives this node the certificate and key it proves its frames
// with: its router certificate, or its controller intermediate, as `pki
// init` wrote them. The certificate must be one the peers accept (see
// NodeAuth) and name this node with its role, and key must be its key.
func (a *NodeAuth) SetIdentity(cert *x509.Certificate, key crypto.Signer) error {
	if cert == nil || key == nil {
		return errors.New("gossip: node identity: no certificate or key")
	}
	nc := a.cert(cert.Raw)
	switch {
	case nc.err != nil:
		return fmt.Errorf("gossip: node identity: %w", nc.err)
	case nc.name != a.name || nc.role != a.role:
		return fmt.Errorf("gossip: node identity: the certificate names %v %q, this node is %v %q", nc.role, nc.name, a.role, a.name)
	case !nc.pub.Equal(key.Public()):
		return errors.New("gossip: node identity: the key is not the certificate's")
	}
	if _, err := pki.SignNodeProof(key, "", nil); err != nil {
		return fmt.Errorf("gossip: node identity: %w", err)
	}
	a.mu.Lock()
	a.self = &nodeIdentity{key: key, der: bytes.Clone(cert.Raw)}
	a.mu.Unlock()
	return nil
}

// Proves reports whether this node has an identity to prove its frames
// with.
func (a *NodeAuth) Proves() bool {
	if a == nil {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.self != nil
}

// Prove returns frame, a frame this node encoded (EncodeFrame, no trailer
// yet), followed by a trailer holding this node's proof of it for
// recipient ("" for any). frame is not modified. Without an identity it
// returns frame as it is.
func (a *NodeAuth) Prove(frame []byte, recipient string) ([]byte, error) {
	a.mu.Lock()
	self := a.self
	a.mu.Unlock()
	if self == nil {
		return frame, nil
	}
	sig, err := pki.SignNodeProof(self.key, recipient, frame)
	if err != nil {
		return nil, fmt.Errorf("gossip: prove frame: %w", err)
	}
	return AppendProof(frame, &Proof{Recipient: recipient, Cert: self.der, Sig: sig})
}

// Verify checks f's proof, made for recipient ("" for a frame made for any
// node), at time now. It returns the proven sender, or the sender unproven
// and why (nil if f carries no proof). It does not check replays: the
// caller keeps the last frame time of each sender.
func (a *NodeAuth) Verify(now time.Time, f *Frame, recipient string) (Sender, error) {
	s := Sender{Name: f.From}
	p := f.Proof
	if p == nil || a == nil {
		return s, nil
	}
	if p.Recipient != recipient {
		return s, fmt.Errorf("%w: made for %q", ErrBadProof, p.Recipient)
	}
	nc := a.cert(p.Cert)
	switch {
	case nc.err != nil:
		return s, nc.err
	case nc.name != f.From:
		return s, fmt.Errorf("%w: the certificate of %v %q proves a frame sent as %q", ErrBadProof, nc.role, nc.name, f.From)
	case now.Before(nc.from) || now.After(nc.until):
		return s, fmt.Errorf("%w: the certificate of %q is valid from %v to %v", ErrBadProof, nc.name,
			nc.from.Format(time.RFC3339), nc.until.Format(time.RFC3339))
	case !pki.VerifyNodeProof(nc.pub, p.Recipient, f.Signed, p.Sig):
		return s, fmt.Errorf("%w: the signature is not by the key of %q", ErrBadProof, nc.name)
	}
	return Sender{Name: f.From, Proven: true, Role: nc.role}, nil
}

// cert returns the parsed certificate der, from the cache or checked now.
func (a *NodeAuth) cert(der []byte) *nodeCert {
	id := sha256.Sum256(der)
	a.mu.Lock()
	nc, ok := a.certs[id]
	root, roots := a.root, a.roots
	a.mu.Unlock()
	if ok {
		return nc
	}
	nc = a.parse(der, root, roots)
	a.mu.Lock()
	if a.root == root { // not reloaded meanwhile
		if len(a.certs) >= maxNodeCertCache {
			for k := range a.certs { // evict one at random
				delete(a.certs, k)
				break
			}
		}
		a.certs[id] = nc
	}
	a.mu.Unlock()
	return nc
}

func (a *NodeAuth) parse(der []byte, root *x509.Certificate, roots *x509.CertPool) *nodeCert {
	fail := func(format string, args ...any) *nodeCert {
		return &nodeCert{err: fmt.Errorf("%w: "+format, append([]any{ErrBadProof}, args...)...)}
	}
	cert, from, until, err := pki.IssuedByRoot(der, root, roots)
	if err != nil {
		return fail("%v", err)
	}
	id, err := pki.IDOf(cert)
	if err != nil {
		return fail("%v", err)
	}
	if id.TrustDomain != a.trustDomain {
		return fail("certificate names %s, not a node of trust domain %q", id, a.trustDomain)
	}
	nc := &nodeCert{name: id.Name, from: from, until: until}
	switch {
	case id.Kind == pki.KindController && cert.IsCA:
		nc.role = RoleController
	case id.Kind == pki.KindRouter && !cert.IsCA:
		nc.role = RoleRouter
	default:
		return fail("certificate %s is neither a controller intermediate nor a router leaf", id)
	}
	if cert.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fail("certificate %s may not sign", id)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return fail("key of %s is not ECDSA P-256", id)
	}
	nc.pub = pub
	return nc
}
