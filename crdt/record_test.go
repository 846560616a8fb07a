package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
)

func TestAuthorStringParseRoundTrip(t *testing.T) {
	for _, a := range []Author{
		{"ctrl-a", 1},
		{"ctrl-a", 0},
		{"c", 1<<64 - 1},
		{"name#with#hashes", 0x0123456789abcdef},
		{"région-eu/1", 42},
	} {
		s := a.String()
		got, err := ParseAuthor(s)
		if err != nil {
			t.Fatalf("ParseAuthor(%q): %v", s, err)
		}
		if got != a {
			t.Fatalf("ParseAuthor(%q) = %+v, want %+v", s, got, a)
		}
	}
	for _, bad := range []string{"", "ctrl", "#0000000000000001", "ctrl#1", "ctrl#000000000000000g", "ctrl#00000000000000001"} {
		if a, err := ParseAuthor(bad); err == nil {
			t.Errorf("ParseAuthor(%q) = %+v, want an error", bad, a)
		}
	}
	if got, want := (Dot{ctrlA, 7}).String(), "ctrl-a#0000000000000001:7"; got != want {
		t.Errorf("Dot.String() = %q, want %q", got, want)
	}
}

func TestParseSerialAndSessionID(t *testing.T) {
	s, err := ParseSerial("ABC")
	if err != nil || s != (Serial{14: 0x0a, 15: 0xbc}) {
		t.Fatalf("ParseSerial(ABC) = %v, %v", s, err)
	}
	full := serial(77)
	if got, err := ParseSerial(full.String()); err != nil || got != full {
		t.Fatalf("ParseSerial(String()) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("1", 33)} {
		if _, err := ParseSerial(bad); err == nil {
			t.Errorf("ParseSerial(%q) succeeded", bad)
		}
	}
	id := sid(5)
	if got, err := ParseSessionID(id.String()); err != nil || got != id {
		t.Fatalf("ParseSessionID(String()) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "00", strings.Repeat("z", 32)} {
		if _, err := ParseSessionID(bad); err == nil {
			t.Errorf("ParseSessionID(%q) succeeded", bad)
		}
	}
	if !(Serial{}).IsZero() || full.IsZero() || !(SessionID{}).IsZero() || id.IsZero() {
		t.Error("IsZero")
	}
}

func TestKindAndVerdictNames(t *testing.T) {
	if KindCert.String() != "cert" || Kind(0).String() != "kind(0)" || Kind(9).String() != "kind(9)" {
		t.Error("Kind.String")
	}
	if Admit.String() != "admitted" || Verdict(200).String() != "unknown_verdict" {
		t.Error("Verdict.String")
	}
	for v := Admit; v <= MismatchedFacts; v++ {
		want := v == SerialRevoked || v == SessionRevoked || v == IdentityRevoked || v == IssuerRevoked
		if v.Revoked() != want {
			t.Errorf("%v.Revoked() = %v", v, !want)
		}
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		t.Run(r.Kind().String(), func(t *testing.T) {
			if err := Validate(r); err != nil {
				t.Fatalf("sample record invalid: %v", err)
			}
			b := AppendRecord([]byte("prefix"), r)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("AppendRecord lost the prefix")
			}
			b = b[len("prefix"):]
			if n := EncodedSize(r); n != len(b) {
				t.Fatalf("EncodedSize = %d, encoding is %d bytes", n, len(b))
			}
			if hint := EncodedSizeHint(r); hint < len(b) {
				t.Fatalf("EncodedSizeHint = %d, below the %d bytes of the encoding", hint, len(b))
			}
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(r, got, cmp.Comparer(sameBatch)); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
			if !bytes.Equal(SignedBytes(r), SignedBytes(got)) {
				t.Fatal("signed bytes changed across a round trip")
			}
			if !bytes.HasPrefix(SignedBytes(r), []byte(signedPrefix)) {
				t.Fatal("signed bytes lack the domain prefix")
			}
		})
	}
}

// The largest record of each kind stays within EncodedSizeHint, which
// DeltaSince and gossip use to fill packets.
func TestEncodedSizeHintIsAnUpperBound(t *testing.T) {
	name := strings.Repeat("n", MaxNameLen)
	ident := strings.Repeat("i", MaxIdentityLen)
	text := strings.Repeat("t", MaxTextLen)
	h := Header{Author: Author{name, 1<<64 - 1}, Seq: 1<<64 - 1, HLC: 1<<64 - 1}
	recs := []Record{
		&SessionRecord{Header: h, ID: sid(1), Identity: ident, Method: text, Created: -1 << 63, Expires: 1<<63 - 1},
		&CertRecord{Header: h, Serial: serial(1), Session: sid(1), Identity: ident, NotBefore: -1 << 63, NotAfter: 1<<63 - 1, Supersedes: serial(2), SupersedeAt: -1 << 63},
		&RevocationRecord{Header: h, Target: RevokeSerial, Serial: serial(1), Reason: text, At: -1 << 63, Until: -1 << 63},
		&IdentityRevocationRecord{Header: h, Identity: ident, RevokedBefore: -1 << 63, Reason: text, Until: -1 << 63},
		&SignerRecord{Header: h, Controller: name, KeyID: [32]byte{1}, Cert: bytes.Repeat([]byte{1}, MaxCertLen), NotAfter: -1 << 63, RevokedAt: -1 << 63},
		&SignerRecord{Header: h, Controller: name, Revoked: true, RootSig: bytes.Repeat([]byte{1}, MaxRootSigLen), NotAfter: -1 << 63, RevokedAt: -1 << 63},
		&SignerRecord{Header: h, Controller: name, Revoked: true, RootSig: bytes.Repeat([]byte{1}, MaxRootSigLen), NotAfter: -1 << 63, RevokedAt: -1 << 63,
			Cut: maxCut(name)},
	}
	for _, r := range recs {
		if err := Validate(r); err != nil {
			t.Fatalf("%v: %v", r.Kind(), err)
		}
		if n, hint := EncodedSize(r), EncodedSizeHint(r); hint < n {
			t.Errorf("%v: EncodedSizeHint %d < EncodedSize %d", r.Kind(), hint, n)
		}
		if _, err := DecodeRecord(AppendRecord(nil, r)); err != nil {
			t.Errorf("%v at every limit does not decode: %v", r.Kind(), err)
		}
	}
}

// An empty byte field signs the same whether the signer held nil or an
// empty slice: the decoder cannot tell them apart, so a record signed over
// one form would fail verification everywhere else.
func TestEmptyBytesEncodeCanonically(t *testing.T) {
	keys := newTestKeys("ctrl-b")
	r := newRootRevocation(ctrlB, 1, t0, "ctrl-z", t0, 0)
	r.Cert = []byte{}
	r.RootSig = []byte("x")
	if err := Sign(r, edSigner{keys.priv["ctrl-b"]}); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(AppendRecord(nil, r))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(SignedBytes(r), SignedBytes(got)) {
		t.Fatal("signed bytes of a record with an empty byte field change across a round trip")
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	good := AppendRecord(nil, sampleRecords()[1])
	encode := func(fields ...any) []byte {
		b, err := msgpack.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sig := make([]byte, 64)
	id := make([]byte, 16)
	id[0] = 1
	cases := map[string][]byte{
		"empty":          nil,
		"trailing bytes": append(append([]byte(nil), good...), 0xc0),
		"truncated":      good[:len(good)-1],
		"not an array":   {0x01},
		"kind 0":         encode(0, "a", 1, 1, 1, sig, id, "x", "", 0, 0),
		"kind 6":         encode(6, "a", 1, 1, 1, sig, id, "x", "", 0, 0),
		"kind 257":       encode(257, "a", 1, 1, 1, sig, id, "x", "", 0, 0),
		"field count":    encode(1, "a", 1, 1, 1, sig, id, "x", "", 0),
		"short sig":      encode(1, "a", 1, 1, 1, sig[:63], id, "x", "", 0, 0),
		"short id":       encode(1, "a", 1, 1, 1, sig, id[:15], "x", "", 0, 0),
		"long name":      encode(1, strings.Repeat("a", MaxNameLen+1), 1, 1, 1, sig, id, "x", "", 0, 0),
		"long identity":  encode(1, "a", 1, 1, 1, sig, id, strings.Repeat("x", MaxIdentityLen+1), "", 0, 0),
		"seq 0":          encode(1, "a", 1, 0, 1, sig, id, "x", "", 0, 0),
		"zero id":        encode(1, "a", 1, 1, 1, sig, make([]byte, 16), "x", "", 0, 0),
		"string for int": encode(1, "a", "1", 1, 1, sig, id, "x", "", 0, 0),
		"huge array":     {0xdd, 0xff, 0xff, 0xff, 0xff},
		"huge string":    {0x9b, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff},
		"huge bin":       {0x9b, 0x01, 0xa1, 'a', 0x01, 0x01, 0x01, 0xc6, 0xff, 0xff, 0xff, 0xff},
	}
	if _, err := DecodeRecord(encode(1, "a", 1, 1, 1, sig, id, "x", "", 0, 0)); err != nil {
		t.Fatalf("the baseline of the cases does not decode: %v", err)
	}
	for name, b := range cases {
		r, err := DecodeRecord(b)
		if err == nil {
			t.Errorf("%s: decoded %+v", name, r)
			continue
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error %v is neither ErrMalformed nor ErrInvalid", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	longName := strings.Repeat("n", MaxNameLen+1)
	longText := strings.Repeat("t", MaxTextLen+1)
	longIdent := strings.Repeat("i", MaxIdentityLen+1)
	valid := func() []Record { return sampleRecords() }
	cases := []struct {
		name   string
		mutate func() Record
	}{
		{"nil", func() Record { return nil }},
		{"no author", func() Record { r := valid()[0]; r.Head().Author.Name = ""; return r }},
		{"long author", func() Record { r := valid()[0]; r.Head().Author.Name = longName; return r }},
		{"seq 0", func() Record { r := valid()[0]; r.Head().Seq = 0; return r }},
		{"session zero id", func() Record { r := valid()[0].(*SessionRecord); r.ID = SessionID{}; return r }},
		{"session no identity", func() Record { r := valid()[0].(*SessionRecord); r.Identity = ""; return r }},
		{"session long identity", func() Record { r := valid()[0].(*SessionRecord); r.Identity = longIdent; return r }},
		{"session long method", func() Record { r := valid()[0].(*SessionRecord); r.Method = longText; return r }},
		{"session expires first", func() Record { r := valid()[0].(*SessionRecord); r.Expires = r.Created - 1; return r }},
		{"cert zero serial", func() Record { r := valid()[1].(*CertRecord); r.Serial = Serial{}; return r }},
		{"cert no session", func() Record { r := valid()[1].(*CertRecord); r.Session = SessionID{}; return r }},
		{"cert no identity", func() Record { r := valid()[1].(*CertRecord); r.Identity = ""; return r }},
		{"cert expires first", func() Record { r := valid()[1].(*CertRecord); r.NotAfter = r.NotBefore - 1; return r }},
		{"cert supersedes itself", func() Record { r := valid()[2].(*CertRecord); r.Supersedes = r.Serial; return r }},
		{"revocation target 0", func() Record { r := valid()[3].(*RevocationRecord); r.Target = 0; return r }},
		{"revocation target 3", func() Record { r := valid()[3].(*RevocationRecord); r.Target = 3; return r }},
		{"serial revocation no serial", func() Record { r := valid()[3].(*RevocationRecord); r.Serial = Serial{}; return r }},
		{"serial revocation with session", func() Record { r := valid()[3].(*RevocationRecord); r.Session = sid(1); return r }},
		{"session revocation no session", func() Record { r := valid()[4].(*RevocationRecord); r.Session = SessionID{}; return r }},
		{"session revocation with serial", func() Record { r := valid()[4].(*RevocationRecord); r.Serial = serial(1); return r }},
		{"revocation long reason", func() Record { r := valid()[3].(*RevocationRecord); r.Reason = longText; return r }},
		{"identity revocation no identity", func() Record { r := valid()[5].(*IdentityRevocationRecord); r.Identity = ""; return r }},
		{"identity revocation long reason", func() Record { r := valid()[5].(*IdentityRevocationRecord); r.Reason = longText; return r }},
		{"signer no controller", func() Record { r := valid()[6].(*SignerRecord); r.Controller = ""; return r }},
		{"signer long controller", func() Record { r := valid()[6].(*SignerRecord); r.Controller = longName; return r }},
		{"signer no cert", func() Record { r := valid()[6].(*SignerRecord); r.Cert = nil; return r }},
		{"signer long cert", func() Record { r := valid()[6].(*SignerRecord); r.Cert = make([]byte, MaxCertLen+1); return r }},
		{"active signer with root sig", func() Record { r := valid()[6].(*SignerRecord); r.RootSig = []byte{1}; return r }},
		{"revocation without root sig", func() Record { r := valid()[7].(*SignerRecord); r.RootSig = nil; return r }},
		{"revocation long root sig", func() Record { r := valid()[7].(*SignerRecord); r.RootSig = make([]byte, MaxRootSigLen+1); return r }},
		{"revocation with key", func() Record { r := valid()[7].(*SignerRecord); r.KeyID = [32]byte{1}; return r }},
		{"revocation with cert", func() Record { r := valid()[7].(*SignerRecord); r.Cert = []byte{1}; return r }},
	}
	for _, c := range cases {
		if err := Validate(c.mutate()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", c.name, err)
		}
	}
	for _, r := range valid() {
		if err := Validate(r); err != nil {
			t.Errorf("valid %v: %v", r.Kind(), err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	keys := newTestKeys("ctrl-a", "ctrl-b", "ctrl-c")
	for _, r := range sampleRecords()[:8] {
		if err := Sign(r, edSigner{keys.priv[r.Head().Author.Name]}); err != nil {
			t.Fatal(err)
		}
		if sr, ok := r.(*SignerRecord); ok && sr.Revoked {
			sr.RootSig = edSigner{keys.root}.mustSign([]byte(sr.Controller))
			if err := Sign(r, edSigner{keys.priv[r.Head().Author.Name]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := Verify(r, keys); err != nil {
			t.Fatalf("%v: %v", r.Kind(), err)
		}
		// The signature survives the wire.
		got, err := DecodeRecord(AppendRecord(nil, r))
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(got, keys); err != nil {
			t.Fatalf("%v after a round trip: %v", r.Kind(), err)
		}
		// Any change of a signed field breaks it: the HLC here, the body
		// below.
		got.Head().HLC++
		if err := Verify(got, keys); !errors.Is(err, errBadSig) {
			t.Fatalf("%v with a changed HLC: %v", r.Kind(), err)
		}
	}
	r := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	if err := Sign(r, edSigner{keys.priv["ctrl-a"]}); err != nil {
		t.Fatal(err)
	}
	r.Identity = "mallory"
	if err := Verify(r, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("changed identity: %v", err)
	}
	// Signed by another controller's key.
	r = newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	if err := Sign(r, edSigner{keys.priv["ctrl-b"]}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("wrong key: %v", err)
	}
	// Verify validates first.
	r.Identity = ""
	if err := Verify(r, keys); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid record: %v", err)
	}
	// A revoking signer record without the root's signature.
	rev := newRootRevocation(ctrlB, 9, t0, "ctrl-a", t0, 0)
	if err := Sign(rev, edSigner{keys.priv["ctrl-b"]}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(rev, keys); !errors.Is(err, errBadSig) {
		t.Fatalf("revocation without a root signature: %v", err)
	}
	// A signer error is wrapped with the record.
	if err := Sign(r, failingSigner{}); err == nil || !strings.Contains(err.Error(), "session") {
		t.Fatalf("Sign with a failing signer: %v", err)
	}
}

func (s edSigner) mustSign(msg []byte) []byte {
	sig, _ := s.Sign(msg)
	return sig[:]
}

type failingSigner struct{}

func (failingSigner) Sign([]byte) (Signature, error) { return Signature{}, errors.New("hsm offline") }

func TestEncodeToDecodeFrom(t *testing.T) {
	recs := sampleRecords()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := EncodeTo(enc, recs); err != nil {
		t.Fatal(err)
	}
	if err := enc.EncodeString("after"); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	got, err := DecodeFrom(dec, len(recs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recs, got, cmp.Comparer(sameBatch)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// The decoder stops right after the list.
	if s, err := dec.DecodeString(); err != nil || s != "after" {
		t.Fatalf("after the list: %q, %v", s, err)
	}
	// More records than the caller allows.
	if _, err := DecodeFrom(msgpack.NewDecoder(bytes.NewReader(b)), len(recs)-1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("over the limit: %v", err)
	}
	// A claimed count never allocates beyond MaxRecordsPerMessage, nor
	// past the input.
	huge := []byte{0xdd, 0x00, 0x01, 0x00, 0x00} // array32 of 65536
	if _, err := DecodeFrom(msgpack.NewDecoder(bytes.NewReader(huge)), 1<<30); !errors.Is(err, ErrMalformed) {
		t.Fatalf("array of 65536 and nothing in it: %v", err)
	}
	huge = []byte{0xdd, 0x00, 0x01, 0x00, 0x01}
	if _, err := DecodeFrom(msgpack.NewDecoder(bytes.NewReader(huge)), 1<<30); !errors.Is(err, ErrMalformed) {
		t.Fatalf("array over MaxRecordsPerMessage: %v", err)
	}
	// An invalid record in the list fails the whole list.
	bad := sampleRecords()
	bad[2].(*CertRecord).Identity = ""
	buf.Reset()
	if err := EncodeTo(msgpack.NewEncoder(&buf), bad); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFrom(msgpack.NewDecoder(&buf), 100); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid record in a list: %v", err)
	}
}

// The encoder writes exactly what msgpack.Encoder writes by default, so
// that any msgpack decoder reads it and signatures made before stay valid.
func TestEncoderMatchesMsgpack(t *testing.T) {
	check := func(name string, ours func(*encoder), theirs func(*msgpack.Encoder) error) {
		t.Helper()
		var e encoder
		ours(&e)
		var buf bytes.Buffer
		if err := theirs(msgpack.NewEncoder(&buf)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.b, buf.Bytes()) {
			t.Errorf("%s: ours % x, msgpack % x", name, e.b, buf.Bytes())
		}
	}
	for _, v := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		check(fmt.Sprint("uint ", v), func(e *encoder) { e.uint(v) }, func(m *msgpack.Encoder) error { return m.EncodeUint(v) })
	}
	for _, v := range []int64{0, 1, -1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1, math.MinInt64, math.MaxInt64, 200} {
		check(fmt.Sprint("int ", v), func(e *encoder) { e.int(v) }, func(m *msgpack.Encoder) error { return m.EncodeInt(v) })
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("s", n)
		check(fmt.Sprint("str ", n), func(e *encoder) { e.str(s) }, func(m *msgpack.Encoder) error { return m.EncodeString(s) })
		check(fmt.Sprint("array ", n), func(e *encoder) { e.arrayLen(n) }, func(m *msgpack.Encoder) error { return m.EncodeArrayLen(n) })
		if n > 0 {
			b := []byte(s)
			check(fmt.Sprint("bin ", n), func(e *encoder) { e.bytes(b) }, func(m *msgpack.Encoder) error { return m.EncodeBytes(b) })
		}
	}
	check("nil bin", func(e *encoder) { e.bytes(nil) }, func(m *msgpack.Encoder) error { return m.EncodeBytes(nil) })
	check("true", func(e *encoder) { e.bool(true) }, func(m *msgpack.Encoder) error { return m.EncodeBool(true) })
	check("false", func(e *encoder) { e.bool(false) }, func(m *msgpack.Encoder) error { return m.EncodeBool(false) })
	// The whole of a record, against a msgpack.Encoder writing the
	// documented layout field by field.
	r := sampleRecords()[1].(*CertRecord)
	check("cert record", func(e *encoder) { encodeRecord(e, r, true) }, func(m *msgpack.Encoder) error {
		for _, err := range []error{
			m.EncodeArrayLen(14), m.EncodeUint(uint64(KindCert)), m.EncodeString(r.Author.Name), m.EncodeUint(r.Author.Incarnation),
			m.EncodeUint(r.Seq), m.EncodeUint(uint64(r.HLC)), m.EncodeBytes(sigBytes(r.Sig())),
			m.EncodeBytes(r.Serial[:]), m.EncodeBytes(r.Session[:]), m.EncodeString(r.Identity), m.EncodeBytes(r.Fingerprint[:]),
			m.EncodeInt(int64(r.NotBefore)), m.EncodeInt(int64(r.NotAfter)), m.EncodeBytes(r.Supersedes[:]), m.EncodeInt(int64(r.SupersedeAt)),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// EncodeTo writes the same bytes whatever the settings of the caller's
// encoder.
func TestEncodeToIgnoresEncoderSettings(t *testing.T) {
	var plain, interned bytes.Buffer
	if err := EncodeTo(msgpack.NewEncoder(&plain), sampleRecords()); err != nil {
		t.Fatal(err)
	}
	enc := msgpack.NewEncoder(&interned)
	enc.UseInternedStrings(true)
	if err := EncodeTo(enc, sampleRecords()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Bytes(), interned.Bytes()) {
		t.Fatal("an encoder interning strings changed the records' bytes")
	}
}

// maxCut is the largest cut a revocation of controller may carry.
func maxCut(controller string) []AuthorContext {
	cut := make([]AuthorContext, MaxCutAuthors)
	for i := range cut {
		c := &cut[i]
		c.Author = Author{controller, 1<<64 - MaxCutAuthors + uint64(i)}
		c.Max = 1<<64 - 2*MaxCutAbove - 2
		for j := range MaxCutAbove {
			c.Above = append(c.Above, c.Max+2+2*uint64(j))
		}
	}
	return cut
}

func sigBytes(s Signature) []byte { return s[:] }
