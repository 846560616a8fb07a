package client

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// Session is a logged-in session and its current certificate.
type Session struct {
	ID       string
	Identity string
	Serial   string // lowercase hex
	Key      *ecdsa.PrivateKey
	// Chain is what the client presents: the leaf, then the issuing
	// controller's intermediate.
	Chain []*x509.Certificate
	// CA is the root the controller returned.
	CA []*x509.Certificate
	// Issued is when this client received the certificate (its clock);
	// rotation is scheduled from it.
	Issued         time.Time
	Expires        time.Time // the certificate's
	SessionExpires time.Time
	// extended is when a fresh token last moved SessionExpires (the
	// client's clock; zero if none did since Issued): the next extension
	// is scheduled from it, as a rotation is from Issued.
	extended time.Time
	// Controller is the URL of the controller that issued the certificate.
	Controller string
}

// renewFrom is when the session's current end was set: at the
// certificate's issue or at the last extension, whichever is later.
// Scheduled from Issued alone, each extension would come sooner after the
// last than the one before (a third of an ever longer span from Issued to
// the end), until the client asked for a token in a loop.
func (s *Session) renewFrom() time.Time {
	if s.extended.After(s.Issued) {
		return s.extended
	}
	return s.Issued
}

// Leaf is the session's current certificate.
func (s *Session) Leaf() *x509.Certificate {
	if len(s.Chain) == 0 {
		return nil
	}
	return s.Chain[0]
}

// TLSCertificate is the session's certificate as crypto/tls presents it.
func (s *Session) TLSCertificate() tls.Certificate {
	c := tls.Certificate{PrivateKey: s.Key, Leaf: s.Leaf()}
	for _, x := range s.Chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// Files written by SaveDir, as `certmesh login` lays them out.
const (
	KeyFile     = "key.pem"
	CertFile    = "cert.pem"
	CAFile      = "ca.pem"
	SessionFile = "session.json"
)

// sessionJSON is session.json.
type sessionJSON struct {
	SessionID        string    `json:"session_id"`
	Identity         string    `json:"identity"`
	Serial           string    `json:"serial"`
	ExpiresAt        time.Time `json:"expires_at"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
	IssuedAt         time.Time `json:"issued_at"`
	Controller       string    `json:"controller,omitempty"`
}

// SaveDir writes s into dir: key.pem (mode 0600), cert.pem (leaf and
// intermediate), ca.pem and session.json. Each file is replaced atomically;
// the key goes first, so a crash never pairs a new key with an old
// certificate for long, and session.json last.
func SaveDir(dir string, s *Session) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	keyPEM, err := pki.EncodeKeyPEM(s.Key)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	meta, err := json.MarshalIndent(sessionJSON{
		SessionID: s.ID, Identity: s.Identity, Serial: s.Serial,
		ExpiresAt: s.Expires.UTC(), SessionExpiresAt: s.SessionExpires.UTC(), IssuedAt: s.Issued.UTC(),
		Controller: s.Controller,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{KeyFile, keyPEM, 0o600},
		{CertFile, pki.EncodeCertsPEM(s.Chain...), 0o644},
		{CAFile, pki.EncodeCertsPEM(s.CA...), 0o644},
		{SessionFile, append(meta, '\n'), 0o644},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// LoadDir reads a session that SaveDir (or `certmesh login`) wrote.
func LoadDir(dir string) (*Session, error) {
	raw, err := os.ReadFile(filepath.Join(dir, SessionFile))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var meta sessionJSON
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("client: %s: %w", filepath.Join(dir, SessionFile), err)
	}
	if meta.SessionID == "" {
		return nil, fmt.Errorf("client: %s: no session_id", filepath.Join(dir, SessionFile))
	}
	chain, err := pki.LoadCerts(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	key, err := pki.LoadKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || !ek.PublicKey.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("client: %s does not hold the key of %s", filepath.Join(dir, KeyFile), filepath.Join(dir, CertFile))
	}
	ca, err := pki.LoadCerts(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	s := &Session{
		ID: meta.SessionID, Identity: meta.Identity, Serial: meta.Serial, Key: ek, Chain: chain, CA: ca,
		Issued: meta.IssuedAt, Expires: chain[0].NotAfter, SessionExpires: meta.SessionExpiresAt,
		Controller: meta.Controller,
	}
	if s.Issued.IsZero() {
		s.Issued = chain[0].NotBefore.Add(pki.ClockSkewAllowance)
	}
	if s.SessionExpires.IsZero() {
		s.SessionExpires = s.Expires
	}
	return s, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

var errNoChain = errors.New("client: certificate response without a certificate")
