package pki_test

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/certmesh/certmesh/pki"
)

func TestSerialTextForms(t *testing.T) {
	s, err := pki.NewSerial(bytes.NewReader(bytes.Repeat([]byte{0xab}, 16)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.String(), strings.Repeat("ab", 16); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	back, err := pki.SerialFromBig(s.Big())
	if err != nil || back != s {
		t.Errorf("SerialFromBig(Big()) = %v, %v; want %v", back, err, s)
	}
	j, _ := json.Marshal(s)
	var fromJSON pki.Serial
	if err := json.Unmarshal(j, &fromJSON); err != nil || fromJSON != s {
		t.Errorf("JSON round trip: %s -> %v, %v", j, fromJSON, err)
	}

	small := pki.Serial{15: 1}
	for _, in := range []string{"01", "1", "00000000000000000000000000000001", "0:01"} {
		got, err := pki.ParseSerial(in)
		if err != nil || got != small {
			t.Errorf("ParseSerial(%q) = %v, %v; want %v", in, got, err, small)
		}
	}
	if got, err := pki.ParseSerial("AB:CD"); err != nil || got.String() != strings.Repeat("00", 14)+"abcd" {
		t.Errorf("ParseSerial(AB:CD) = %v, %v", got, err)
	}
	for _, in := range []string{"", "xyz", strings.Repeat("f", 33), ":"} {
		if _, err := pki.ParseSerial(in); err == nil {
			t.Errorf("ParseSerial(%q) succeeded", in)
		}
	}
	for _, n := range []*big.Int{big.NewInt(-1), new(big.Int).Lsh(big.NewInt(1), 128), nil} {
		if _, err := pki.SerialFromBig(n); err == nil {
			t.Errorf("SerialFromBig(%v) succeeded", n)
		}
	}
	// An all-zero read is retried: the serial is never zero.
	z, err := pki.NewSerial(bytes.NewReader(append(make([]byte, 16), bytes.Repeat([]byte{1}, 16)...)))
	if err != nil || z == (pki.Serial{}) {
		t.Errorf("NewSerial after a zero read = %v, %v", z, err)
	}
}
