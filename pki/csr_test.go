package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/certmesh/certmesh/pki"
)

func makeCSR(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

type csrCase struct {
	name    string
	input   []byte
	wantErr string // "" when the CSR must be accepted
}

// csrCases are the table of TestCheckCSR and the seed corpus of FuzzCheckCSR.
func csrCases(t testing.TB) []csrCase {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)

	good := makeCSR(t, p256)
	block, _ := pem.Decode(good)
	der := block.Bytes

	// Flip a bit in the last byte of the signature.
	badSig := bytes.Clone(der)
	badSig[len(badSig)-1] ^= 1
	// Flip a bit inside the signed part (the subject CN "ignored").
	i := bytes.Index(der, []byte("ignored"))
	badBody := bytes.Clone(der)
	badBody[i] ^= 1

	return []csrCase{
		{"P-256 PEM", good, ""},
		{"P-256 DER", der, ""},
		{"P-256 PEM with surrounding whitespace", append(append([]byte("\n  "), good...), "\n\n"...), ""},
		{"NEW CERTIFICATE REQUEST block", pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: der}), ""},
		{"signature bit flipped", badSig, "signature"},
		{"signed content changed", badBody, "signature"},
		{"P-384 key", makeCSR(t, p384), "P-384"},
		{"RSA key", makeCSR(t, rsaKey), "RSA"},
		{"Ed25519 key", makeCSR(t, edKey), "Ed25519"},
		{"garbage", []byte("this is not a CSR"), "invalid"},
		{"empty", nil, "invalid"},
		{"truncated DER", der[:len(der)/2], "invalid"},
		{"DER with trailing data", append(bytes.Clone(der), 0), "trailing"},
		{"PEM of a certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), "want CERTIFICATE REQUEST"},
		{"two PEM blocks", append(bytes.Clone(good), good...), "after the PEM block"},
		{"broken PEM", []byte("-----BEGIN CERTIFICATE REQUEST-----\n!!!\n"), "malformed PEM"},
		{"too large", append(bytes.Clone(good), bytes.Repeat([]byte(" "), pki.MaxCSRBytes)...), "more than"},
	}
}

func TestCheckCSR(t *testing.T) {
	for _, tt := range csrCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := pki.CheckCSR(tt.input)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckCSR: %v", err)
				}
				if pub.Curve != elliptic.P256() {
					t.Fatalf("key on %s", pub.Curve.Params().Name)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckCSR accepted it")
			}
			if !errors.Is(err, pki.ErrInvalidCSR) {
				t.Errorf("error %v does not wrap ErrInvalidCSR", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzCheckCSR checks that no input makes CheckCSR panic or accept a key
// other than P-256 or a request whose signature does not verify. Its seed
// corpus (the TestCheckCSR table) runs with plain `go test`.
func FuzzCheckCSR(f *testing.F) {
	for _, tt := range csrCases(f) {
		f.Add(tt.input)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		pub, err := pki.CheckCSR(in)
		if err != nil {
			if !errors.Is(err, pki.ErrInvalidCSR) {
				t.Fatalf("error %v does not wrap ErrInvalidCSR", err)
			}
			return
		}
		if pub == nil || pub.Curve != elliptic.P256() {
			t.Fatalf("accepted a key that is not P-256: %v", pub)
		}
		der := in
		if b, _ := pem.Decode(bytes.TrimSpace(in)); b != nil {
			der = b.Bytes
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("accepted a request that does not parse or verify: %v", err)
		}
	})
}
