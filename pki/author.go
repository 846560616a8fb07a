package pki

import (
	"crypto/sha256"
	"fmt"
	"io"
)

// Who wrote a session or a certificate is part of its name.
//
// Session and certificate records are write-once facts: the first record
// (by HLC) for a session id or a serial wins everywhere. If any controller
// key could write them, one stolen key, even after the root revoked it,
// could write a backdated record for another controller's session (moving
// its creation past an identity revocation, or its expiry by weeks) or for
// another controller's serial (so that the genuine certificate is refused).
// So the creator is bound into the name: the last 8 bytes of a session id
// or a serial are random, the first 8 a tag, SHA-256 over a context, the
// creating controller's name and the random half. A record counts only
// when its author's name gives its key's tag; forging a tag for another
// controller's name is a 64-bit preimage. The controller that created a
// session is the one that logged the client in; the one that issued a
// certificate is the controller named by the intermediate that signed it,
// which the verified chain tells a router.

// tagSize is the size of the creator tag at the start of an id.
const tagSize = 8

const (
	serialTagContext  = "certmesh/serial/v1\x00"
	sessionTagContext = "certmesh/session/v1\x00"
)

func authorTag(context, name string, random []byte) [tagSize]byte {
	h := sha256.New()
	h.Write([]byte(context))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(random)
	var tag [tagSize]byte
	copy(tag[:], h.Sum(nil))
	return tag
}

// newTagged draws the random half of an id from rand and tags it with name.
func newTagged(context, name string, rand io.Reader) ([16]byte, error) {
	var id [16]byte
	for {
		if _, err := io.ReadFull(orCryptoRand(rand), id[tagSize:]); err != nil {
			return id, fmt.Errorf("pki: read random id: %w", err)
		}
		tag := authorTag(context, name, id[tagSize:])
		copy(id[:tagSize], tag[:])
		if id != ([16]byte{}) {
			return id, nil
		}
	}
}

func taggedBy(context string, id [16]byte, name string) bool {
	return authorTag(context, name, id[tagSize:]) == [tagSize]byte(id[:tagSize])
}

// NewSerialFor returns a random serial tagged as issued by the controller
// named issuer (rand is crypto/rand.Reader if nil). As a big integer it is
// positive, as RFC 5280 section 4.1.2.2 requires.
func NewSerialFor(issuer string, rand io.Reader) (Serial, error) {
	s, err := newTagged(serialTagContext, issuer, rand)
	return Serial(s), err
}

// IssuedBy reports whether serial was made by NewSerialFor for issuer.
func IssuedBy(serial [16]byte, issuer string) bool {
	return taggedBy(serialTagContext, serial, issuer)
}

// NewSessionID returns a random session id tagged as created by the
// controller named creator (rand is crypto/rand.Reader if nil).
func NewSessionID(creator string, rand io.Reader) ([16]byte, error) {
	return newTagged(sessionTagContext, creator, rand)
}

// CreatedBy reports whether session was made by NewSessionID for creator.
func CreatedBy(session [16]byte, creator string) bool {
	return taggedBy(sessionTagContext, session, creator)
}
