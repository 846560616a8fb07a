package router

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/certmesh/certmesh/crdt"
)

// Why the router writes one TLS record itself.
//
// Go's TLS 1.3 server calls VerifyConnection as soon as it has the client's
// Certificate message, before it reads and checks the CertificateVerify
// that proves the client holds the certificate's key
// (crypto/tls/handshake_server_tls13.go, readClientCertificate). Anyone
// with a copy of a certificate, not its key, could make the router pull it
// from controllers and log refusals in its owner's name. So the router
// admits a client only once HandshakeContext has returned, when the key is
// proven; but crypto/tls then offers no way to send an alert, and a refused
// client must still get one (a refused client gets a TLS alert; the
// client SDK's IsRefused and standard clients read it as a refusal).
//
// The router therefore keeps, in memory and for this connection only, the
// server's first application traffic secret (Config.KeyLogWriter, which is
// given nothing else worth keeping), and after a refusal writes the fatal
// alert record (alertFor) that crypto/tls would have written (RFC 8446
// sections 5.2 and 7.3): sequence number 0, since the server has sent
// nothing under that secret (session tickets are off and nothing was
// written since the handshake). To the client this is the very record a
// refusal inside the handshake gave it: in TLS 1.3 the client has finished
// its handshake before the server judges its certificate either way.

// TLS alert descriptions (RFC 8446 section 6) the router refuses with.
const (
	alertBadCertificate     = 42
	alertCertificateRevoked = 44
	alertCertificateExpired = 45
)

// alertFor is the alert that tells a refused client why, as far as TLS has
// words for it: a revoked session, identity, serial or issuer is
// certificate_revoked (so a client knows that logging in again, not
// retrying, is what helps); an expired certificate or session is
// certificate_expired; anything else bad_certificate.
func alertFor(v crdt.Verdict) byte {
	switch {
	case v.Revoked():
		return alertCertificateRevoked
	case v == crdt.CertExpired || v == crdt.SessionExpired:
		return alertCertificateExpired
	}
	return alertBadCertificate
}

// serverTrafficLabel is the key log label of the server's first
// application traffic secret (NSS key log format).
const serverTrafficLabel = "SERVER_TRAFFIC_SECRET_0 "

// trafficSecret is a KeyLogWriter that keeps the server's first
// application traffic secret of one connection and drops every other line.
type trafficSecret struct {
	mu     sync.Mutex
	secret []byte // guarded by mu
}

func (k *trafficSecret) Write(line []byte) (int, error) {
	rest, ok := bytes.CutPrefix(line, []byte(serverTrafficLabel))
	if !ok {
		return len(line), nil
	}
	_, hexSecret, ok := bytes.Cut(bytes.TrimSpace(rest), []byte(" ")) // client random, secret
	if !ok {
		return len(line), nil
	}
	secret := make([]byte, hex.DecodedLen(len(hexSecret)))
	if _, err := hex.Decode(secret, hexSecret); err != nil {
		return len(line), nil
	}
	k.mu.Lock()
	k.secret = secret
	k.mu.Unlock()
	return len(line), nil
}

// take returns the secret and forgets it.
func (k *trafficSecret) take() []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.secret
	k.secret = nil
	return s
}

// alertRecord returns the TLS 1.3 record of the fatal alert desc, protected
// under suite with the server application traffic secret at sequence
// number 0.
func alertRecord(suite uint16, secret []byte, desc byte) ([]byte, error) {
	var (
		newHash func() hash.Hash
		keyLen  int
		aead    func(key []byte) (cipher.AEAD, error)
	)
	gcm := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		newHash, keyLen, aead = sha256.New, 16, gcm
	case tls.TLS_AES_256_GCM_SHA384:
		newHash, keyLen, aead = sha512.New384, 32, gcm
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		newHash, keyLen, aead = sha256.New, chacha20poly1305.KeySize, chacha20poly1305.New
	default:
		return nil, fmt.Errorf("router: alert: cipher suite %s is not TLS 1.3's", tls.CipherSuiteName(suite))
	}
	if len(secret) != newHash().Size() {
		return nil, errors.New("router: alert: no traffic secret")
	}
	key, err := expandLabel(newHash, secret, "key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(newHash, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	a, err := aead(key)
	if err != nil {
		return nil, err
	}
	// TLSInnerPlaintext: the alert (level fatal, description), then its
	// content type; the nonce is iv XOR the sequence number, 0.
	inner := []byte{2, desc, 21}
	header := []byte{23, 3, 3, 0, 0} // application_data, legacy version 1.2
	binary.BigEndian.PutUint16(header[3:], uint16(len(inner)+a.Overhead()))
	return a.Seal(bytes.Clone(header), iv, inner, header), nil
}

// expandLabel is HKDF-Expand-Label of RFC 8446 section 7.1, with an empty
// context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 4+len(full))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // context length
	return hkdf.Expand(h, secret, string(info), n)
}
