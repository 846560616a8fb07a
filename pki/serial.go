package pki

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// Serial is a certificate serial number as certmesh issues them: 128 bits,
// big-endian. Its text form is 32 lower-case hex digits.
type Serial [16]byte

// NewSerial reads a random, non-zero serial from rand (crypto/rand.Reader if
// nil). As a big integer it is
// always positive, as RFC 5280 section 4.1.2.2 requires.
func NewSerial(rand io.Reader) (Serial, error) {
	var s Serial
	for {
		if _, err := io.ReadFull(orCryptoRand(rand), s[:]); err != nil {
			return Serial{}, fmt.Errorf("pki: read serial: %w", err)
		}
		if s != (Serial{}) {
			return s, nil
		}
	}
}

// SerialFromBig converts an x509 serial number. It fails for negative numbers
// and numbers wider than 128 bits, which certmesh never issues.
func SerialFromBig(n *big.Int) (Serial, error) {
	if n == nil || n.Sign() < 0 || n.BitLen() > 128 {
		return Serial{}, errors.New("pki: serial number is not a non-negative 128-bit integer")
	}
	var s Serial
	n.FillBytes(s[:])
	return s, nil
}

// SerialOf returns the serial of a certificate issued by certmesh.
func SerialOf(cert *x509.Certificate) (Serial, error) { return SerialFromBig(cert.SerialNumber) }

// Big returns s as a big integer, as x509.Certificate.SerialNumber holds it.
func (s Serial) Big() *big.Int { return new(big.Int).SetBytes(s[:]) }

// String returns s as 32 lower-case hex digits.
func (s Serial) String() string { return hex.EncodeToString(s[:]) }

// MarshalText implements encoding.TextMarshaler (JSON uses the hex form).
func (s Serial) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseSerial.
func (s *Serial) UnmarshalText(b []byte) error {
	v, err := ParseSerial(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSerial parses a serial in hex, in either case, with or without ':'
// separators (as openssl prints them) and with or without leading zeros.
func ParseSerial(str string) (Serial, error) {
	h := strings.ReplaceAll(str, ":", "")
	if h == "" || len(h) > 32 {
		return Serial{}, fmt.Errorf("pki: serial %.50q is not 1 to 32 hex digits", str)
	}
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return Serial{}, fmt.Errorf("pki: serial %.50q is not hex", str)
	}
	var s Serial
	copy(s[16-len(b):], b)
	return s, nil
}
