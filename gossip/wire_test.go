package gossip

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sampleMessages returns one message of every type, with records of every
// kind, as a node would send them.
func sampleMessages(t testing.TB) []*Message {
	now := epoch
	v := &testVerifier{}
	w := newWriter(v, "ctrl-us")
	hlc := crdt.NewClock(0)
	sign := func(r crdt.Record) crdt.Record {
		w.seq++
		*r.Head() = crdt.Header{Author: w.author, Seq: w.seq, HLC: hlc.Now(now)}
		if err := crdt.Sign(r, w.signer); err != nil {
			t.Fatal(err)
		}
		return r
	}
	sess := sign(&crdt.SessionRecord{ID: crdt.SessionID{1}, Identity: "alice", Method: "oidc:https://idp",
		Created: crdt.MillisOf(now), Expires: crdt.MillisOf(now.Add(time.Hour))})
	cert := sign(&crdt.CertRecord{Serial: crdt.Serial{2}, Session: crdt.SessionID{1}, Identity: "alice",
		Fingerprint: [32]byte{3}, NotBefore: crdt.MillisOf(now), NotAfter: crdt.MillisOf(now.Add(time.Hour)),
		Supersedes: crdt.Serial{4}, SupersedeAt: crdt.MillisOf(now.Add(5 * time.Minute))})
	rev := sign(&crdt.RevocationRecord{Target: crdt.RevokeSerial, Serial: crdt.Serial{2}, Reason: "lost",
		At: crdt.MillisOf(now), Until: crdt.MillisOf(now.Add(time.Hour))})
	idRev := sign(&crdt.IdentityRevocationRecord{Identity: "bob", RevokedBefore: crdt.MillisOf(now),
		Reason: "left", Until: crdt.MillisOf(now.Add(24 * time.Hour))})
	signer := sign(&crdt.SignerRecord{Controller: "ctrl-us", KeyID: [32]byte{5}, Cert: []byte("der"),
		NotAfter: crdt.MillisOf(now.Add(time.Hour))})
	revSigner := sign(&crdt.SignerRecord{Controller: "ctrl-eu", Revoked: true, RevokedAt: crdt.MillisOf(now),
		RootSig: []byte("root-signed")})
	all := []crdt.Record{signer, sess, cert, rev, idRev, revSigner}
	ctx := crdt.Context{{Author: w.author, Max: 3, Above: []uint64{5, 9}}, {Author: crdt.Author{Name: "ctrl-x", Incarnation: 2}, Max: 1}}
	sent := crdt.MillisOf(now)
	return []*Message{
		{Type: MsgPush, SentAt: sent, Origin: "ctrl-us", Batch: 42, Tree: 1, Region: "us", Records: all},
		{Type: MsgRepairReq, SentAt: sent, Repair: crdt.Interval{Author: w.author, From: 3, To: 9}},
		{Type: MsgSyncReq, SentAt: sent, Context: ctx},
		{Type: MsgSyncReq, SentAt: sent, Context: crdt.Context{}},
		{Type: MsgDelta, SentAt: sent, Records: all[:3], Intervals: []crdt.Interval{{Author: w.author, From: 0, To: 3}}, More: true},
		{Type: MsgDelta, SentAt: sent, Records: all[3:], Context: ctx},
		{Type: MsgDelta, SentAt: sent, Context: crdt.Context{}}, // "I have nothing: send me everything"
		{Type: MsgWantReq, SentAt: sent, WantID: 7, Serial: crdt.Serial{2}},
		{Type: MsgWantResp, SentAt: sent, WantID: 7, Serial: crdt.Serial{2}, Found: true, Records: all[:3]},
		{Type: MsgWantResp, SentAt: sent, WantID: 8, Serial: crdt.Serial{9}, Authoritative: true},
		{Type: MsgIHave, SentAt: sent, Origin: "ctrl-us", Batch: 42, Tree: 1, Region: "us",
			Intervals: []crdt.Interval{{Author: w.author, From: 0, To: 6}}},
	}
}

var messageCmp = cmp.Options{cmpopts.IgnoreUnexported(Message{}), cmpopts.EquateEmpty()}

func TestMessagesRoundTrip(t *testing.T) {
	for _, m := range sampleMessages(t) {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("encode %v: %v", m.Type, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %v: %v", m.Type, err)
		}
		if diff := cmp.Diff(m, got, messageCmp); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", m.Type, diff)
		}
		if (m.Context == nil) != (got.Context == nil) {
			t.Errorf("%v: context nil %v, decoded nil %v", m.Type, m.Context == nil, got.Context == nil)
		}
		if got.Size() != len(b) {
			t.Errorf("%v: size %d, encoded %d bytes", m.Type, got.Size(), len(b))
		}

		f, err := EncodeFrame("r-us-1", m)
		if err != nil {
			t.Fatal(err)
		}
		from, got, err := DecodeFrame(f)
		if err != nil || from != "r-us-1" {
			t.Fatalf("frame of %v: from %q, %v", m.Type, from, err)
		}
		if diff := cmp.Diff(m, got, messageCmp); diff != "" {
			t.Errorf("%v frame round trip (-want +got):\n%s", m.Type, diff)
		}
		if got.Size() != len(f) {
			t.Errorf("%v: frame size %d, encoded %d bytes", m.Type, got.Size(), len(f))
		}
		// Every truncation is refused, never accepted or panicked on.
		for i := 0; i < len(f); i++ {
			if _, _, err := DecodeFrame(f[:i]); err == nil {
				t.Fatalf("%v frame truncated to %d of %d bytes decoded", m.Type, i, len(f))
			}
		}
	}
}

func TestDecodeRefusesOtherMajorsAndOversizedInput(t *testing.T) {
	m := sampleMessages(t)[0]
	b, _ := Encode(m)
	b[0] = (ProtocolMajor+1)<<4 | ProtocolMinor
	if _, err := Decode(b); !errors.Is(err, ErrVersion) {
		t.Fatalf("other major: %v", err)
	}
	if _, err := Decode(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	b, _ = Encode(m)
	b[0] = ProtocolMajor<<4 | 0xf // a newer minor of this major is spoken
	if _, err := Decode(b); err != nil {
		t.Fatalf("newer minor: %v", err)
	}
	if _, _, err := DecodeFrame(append([]byte{ProtocolVersion, 0xa0}, b[1:]...)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("frame without a sender: %v", err)
	}
}

// FuzzDecode feeds arbitrary bytes to the decoders, and the proofs of
// whatever frames decode to a NodeAuth. Whatever decodes must re-encode to
// bytes that decode to the same message and proof, and nothing panics. The
// seed corpus (every message type, framed and not, and proven) runs in
// plain go test.
func FuzzDecode(f *testing.F) {
	auth := newAuthFixture(f)
	for _, m := range sampleMessages(f) {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		fr, err := EncodeFrame("ctrl-eu", m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
		proven, err := auth.auth["r1"].Prove(bytes.Clone(fr), "ctrl-a")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(proven)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := Decode(b); err == nil {
			again, err := Encode(m)
			if err != nil {
				t.Fatalf("decoded %v does not encode: %v", m.Type, err)
			}
			m2, err := Decode(again)
			if err != nil {
				t.Fatalf("re-encoded %v does not decode: %v", m.Type, err)
			}
			if diff := cmp.Diff(m, m2, messageCmp); diff != "" {
				t.Fatalf("%v unstable (-first +second):\n%s", m.Type, diff)
			}
			third, _ := Encode(m2)
			if !bytes.Equal(again, third) {
				t.Fatalf("%v: encoding not canonical after one round", m.Type)
			}
		}
		if from, m, err := DecodeFrame(b); err == nil {
			if from == "" {
				t.Fatal("frame decoded without sender")
			}
			again, err := EncodeFrame(from, m)
			if err != nil {
				t.Fatalf("decoded frame %v does not encode: %v", m.Type, err)
			}
			from2, m2, err := DecodeFrame(again)
			if err != nil || from2 != from {
				t.Fatalf("re-encoded frame %v: %q, %v", m.Type, from2, err)
			}
			if diff := cmp.Diff(m, m2, messageCmp); diff != "" {
				t.Fatalf("frame %v unstable (-first +second):\n%s", m.Type, diff)
			}
		}
		if fr, err := ParseFrame(b); err == nil && fr.Proof != nil {
			// Whatever the proof holds, checking it never panics.
			auth.auth["ctrl-a"].Verify(auth.now, fr, "ctrl-a")
			plain, err := EncodeFrame(fr.From, fr.Msg)
			if err != nil {
				t.Fatalf("decoded proven frame %v does not encode: %v", fr.Msg.Type, err)
			}
			again, err := AppendProof(plain, fr.Proof)
			if err != nil {
				t.Fatalf("the proof of a decoded frame does not encode: %v", err)
			}
			fr2, err := ParseFrame(again)
			if err != nil || fr2.Proof == nil || !bytes.Equal(fr2.Signed, plain) {
				t.Fatalf("re-encoded proven frame: %+v, %v", fr2, err)
			}
			if diff := cmp.Diff(fr.Proof, fr2.Proof); diff != "" {
				t.Fatalf("proof unstable (-first +second):\n%s", diff)
			}
		}
	})
}
