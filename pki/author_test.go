package pki

import (
	"testing"
	"time"
)

func TestIdsNameTheirCreator(t *testing.T) {
	s, err := NewSerialFor("ctrl-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !IssuedBy(s, "ctrl-a") || IssuedBy(s, "ctrl-b") || IssuedBy(s, "ctrl-a ") {
		t.Errorf("serial %v: IssuedBy a/b/\"a \" = %v/%v/%v, want true/false/false", s, IssuedBy(s, "ctrl-a"), IssuedBy(s, "ctrl-b"), IssuedBy(s, "ctrl-a "))
	}
	if s.Big().Sign() <= 0 {
		t.Errorf("serial %v is not positive", s)
	}
	id, err := NewSessionID("ctrl-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !CreatedBy(id, "ctrl-a") || CreatedBy(id, "ctrl-b") {
		t.Errorf("session %x: CreatedBy a/b = %v/%v, want true/false", id, CreatedBy(id, "ctrl-a"), CreatedBy(id, "ctrl-b"))
	}
	// A session id and a serial with the same bytes do not stand for each
	// other: the tags have their own contexts.
	if IssuedBy(id, "ctrl-a") || CreatedBy(s, "ctrl-a") {
		t.Error("a session id passes as a serial, or a serial as a session id")
	}
	// Changing the random half breaks the tag.
	s[15] ^= 1
	if IssuedBy(s, "ctrl-a") {
		t.Error("a serial with its random half changed still names ctrl-a")
	}
}

func TestClientCertificatesCarryTheirIssuersSerial(t *testing.T) {
	now := time.Now()
	root, err := NewRoot("td", time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := NewController(root, "td", "ctrl-a", time.Hour, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := IssueClient(ctrl, &key.PublicKey, "alice", "00112233445566778899aabbccddeeff", time.Minute, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := SerialOf(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if !IssuedBy(s, "ctrl-a") {
		t.Errorf("client certificate serial %v does not name ctrl-a", s)
	}
}
