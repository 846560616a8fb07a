package crdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Records travel and are signed as msgpack arrays:
//
//	[kind, author name, incarnation, seq, hlc, sig, body fields...]
//
// The signed bytes are signedPrefix followed by the same array without sig.
// Field order per kind is fixed by encodeBody; adding a field is a protocol
// change (new major version), because old nodes could not re-create the
// signed bytes.
const signedPrefix = "certmesh/record/v1\x00"

// headerFields is the number of array elements before the body.
const headerFields = 6

// bodyFields is the number of body elements per kind.
var bodyFields = [...]int{
	KindSession:            5,
	KindCert:               8,
	KindRevocation:         6,
	KindIdentityRevocation: 4,
	KindSigner:             7,
	KindService:            4,
	KindPolicy:             4,
	KindIdentityRoles:      2,
}

// ErrMalformed wraps every decoding error.
var ErrMalformed = errors.New("crdt: malformed input")

// encoder appends msgpack to a byte slice. It writes the same bytes as
// msgpack.Encoder with its default settings (the most compact form of
// every integer and length), whatever the settings of a caller's encoder,
// and it does not go through an io.Writer per value: encoding is on the
// path of every signature, delta and snapshot.
type encoder struct {
	b []byte
	// trees, when not nil, keeps the Merkle tree of each batch whose
	// records this encoder writes (see encodeBatch).
	trees map[*Batch][][][32]byte
}

func (e *encoder) uint(v uint64) {
	switch {
	case v <= math.MaxInt8:
		e.b = append(e.b, byte(v))
	case v <= math.MaxUint8:
		e.b = append(e.b, msgpcode.Uint8, byte(v))
	case v <= math.MaxUint16:
		e.b = append(e.b, msgpcode.Uint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		e.b = append(e.b, msgpcode.Uint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		e.b = append(e.b, msgpcode.Uint64)
		e.b = binary.BigEndian.AppendUint64(e.b, v)
	}
}

func (e *encoder) int(v int64) {
	switch {
	case v >= 0:
		e.uint(uint64(v))
	case v >= -32:
		e.b = append(e.b, byte(v))
	case v >= math.MinInt8:
		e.b = append(e.b, msgpcode.Int8, byte(v))
	case v >= math.MinInt16:
		e.b = append(e.b, msgpcode.Int16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		e.b = append(e.b, msgpcode.Int32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		e.b = append(e.b, msgpcode.Int64)
		e.b = binary.BigEndian.AppendUint64(e.b, uint64(v))
	}
}

// length appends a str or bin header; fix is the fixed-size code for
// short strings, or 0 for bin, which has none.
func (e *encoder) length(n int, fix, c8, c16, c32 byte) {
	switch {
	case fix != 0 && n < 32:
		e.b = append(e.b, fix|byte(n))
	case n <= math.MaxUint8:
		e.b = append(e.b, c8, byte(n))
	case n <= math.MaxUint16:
		e.b = append(e.b, c16, byte(n>>8), byte(n))
	default:
		e.b = append(e.b, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func (e *encoder) str(v string) {
	e.length(len(v), msgpcode.FixedStrLow, msgpcode.Str8, msgpcode.Str16, msgpcode.Str32)
	e.b = append(e.b, v...)
}

// bytes encodes v as bin, and an empty v, nil or not, as nil: the decoder
// returns nil for both, so the signed bytes of a record stay the same
// across a round trip whichever the signer held.
func (e *encoder) bytes(v []byte) {
	if len(v) == 0 {
		e.b = append(e.b, msgpcode.Nil)
		return
	}
	e.length(len(v), 0, msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32)
	e.b = append(e.b, v...)
}

func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, msgpcode.True)
	} else {
		e.b = append(e.b, msgpcode.False)
	}
}

func (e *encoder) arrayLen(n int) {
	switch {
	case n < 16:
		e.b = append(e.b, msgpcode.FixedArrayLow|byte(n))
	case n <= math.MaxUint16:
		e.b = append(e.b, msgpcode.Array16, byte(n>>8), byte(n))
	default:
		e.b = append(e.b, msgpcode.Array32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func (e *encoder) millis(v Millis)     { e.int(int64(v)) }
func (e *encoder) serial(v Serial)     { e.bytes(v[:]) }
func (e *encoder) session(v SessionID) { e.bytes(v[:]) }

// decoder wraps msgpack.Decoder with a sticky error and length caps. Every
// length read from input is checked before anything is allocated for it.
type decoder struct {
	d   *msgpack.Decoder
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) wrap(err error) {
	if err != nil && d.err == nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			d.fail("truncated")
			return
		}
		d.err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.d.DecodeUint64()
	d.wrap(err)
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.d.DecodeInt64()
	d.wrap(err)
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	v, err := d.d.DecodeBool()
	d.wrap(err)
	return v
}

func (d *decoder) millis() Millis { return Millis(d.int()) }

// rawLen reads a str or bin header and checks it against max.
func (d *decoder) rawLen(max int) int {
	if d.err != nil {
		return 0
	}
	n, err := d.d.DecodeBytesLen() // str and bin headers alike; nil is -1
	if err != nil {
		d.wrap(err)
		return 0
	}
	if n == -1 {
		return 0
	}
	if n < 0 || n > max {
		d.fail("length %d over limit %d", n, max)
		return 0
	}
	return n
}

func (d *decoder) bytes(max int) []byte {
	n := d.rawLen(max)
	if d.err != nil || n == 0 {
		return nil
	}
	b := make([]byte, n)
	d.wrap(d.d.ReadFull(b))
	return b
}

func (d *decoder) str(max int) string {
	n := d.rawLen(max)
	if d.err != nil || n == 0 {
		return ""
	}
	b := make([]byte, n)
	d.wrap(d.d.ReadFull(b))
	return string(b)
}

func (d *decoder) fixed(dst []byte) {
	n := d.rawLen(len(dst))
	if d.err != nil {
		return
	}
	if n != len(dst) {
		d.fail("field of %d bytes, want %d", n, len(dst))
		return
	}
	d.wrap(d.d.ReadFull(dst))
}

func (d *decoder) arrayLen(max int) int {
	if d.err != nil {
		return 0
	}
	n, err := d.d.DecodeArrayLen()
	if err != nil {
		d.wrap(err)
		return 0
	}
	if n < 0 || n > max {
		d.fail("array of %d over limit %d", n, max)
		return 0
	}
	return n
}

func (r *SessionRecord) encodeBody(e *encoder) {
	e.session(r.ID)
	e.str(r.Identity)
	e.str(r.Method)
	e.millis(r.Created)
	e.millis(r.Expires)
	if len(r.Roles) > 0 {
		// A sixth field, only on a session with claimed roles: every
		// other session record, and every one signed before roles
		// existed, keeps its bytes and its signature.
		e.strs(r.Roles)
	}
}

func (r *SessionRecord) decodeBody(d *decoder) error {
	d.fixed(r.ID[:])
	r.Identity = d.str(MaxIdentityLen)
	r.Method = d.str(MaxTextLen)
	r.Created = d.millis()
	r.Expires = d.millis()
	return d.err
}

func (r *CertRecord) encodeBody(e *encoder) {
	e.serial(r.Serial)
	e.session(r.Session)
	e.str(r.Identity)
	e.bytes(r.Fingerprint[:])
	e.millis(r.NotBefore)
	e.millis(r.NotAfter)
	e.serial(r.Supersedes)
	e.millis(r.SupersedeAt)
}

func (r *CertRecord) decodeBody(d *decoder) error {
	d.fixed(r.Serial[:])
	d.fixed(r.Session[:])
	r.Identity = d.str(MaxIdentityLen)
	d.fixed(r.Fingerprint[:])
	r.NotBefore = d.millis()
	r.NotAfter = d.millis()
	d.fixed(r.Supersedes[:])
	r.SupersedeAt = d.millis()
	return d.err
}

func (r *RevocationRecord) encodeBody(e *encoder) {
	e.uint(uint64(r.Target))
	e.session(r.Session)
	e.serial(r.Serial)
	e.str(r.Reason)
	e.millis(r.At)
	e.millis(r.Until)
}

func (r *RevocationRecord) decodeBody(d *decoder) error {
	t := d.uint()
	if t > 255 {
		d.fail("revocation target %d", t)
	}
	r.Target = RevocationTarget(t)
	d.fixed(r.Session[:])
	d.fixed(r.Serial[:])
	r.Reason = d.str(MaxTextLen)
	r.At = d.millis()
	r.Until = d.millis()
	return d.err
}

func (r *IdentityRevocationRecord) encodeBody(e *encoder) {
	e.str(r.Identity)
	e.millis(r.RevokedBefore)
	e.str(r.Reason)
	e.millis(r.Until)
}

func (r *IdentityRevocationRecord) decodeBody(d *decoder) error {
	r.Identity = d.str(MaxIdentityLen)
	r.RevokedBefore = d.millis()
	r.Reason = d.str(MaxTextLen)
	r.Until = d.millis()
	return d.err
}

func (r *SignerRecord) encodeBody(e *encoder) {
	e.str(r.Controller)
	e.bytes(r.KeyID[:])
	e.bytes(r.Cert)
	e.millis(r.NotAfter)
	e.bool(r.Revoked)
	e.millis(r.RevokedAt)
	e.bytes(r.RootSig)
	if r.Cut != nil {
		// An eighth field, only on a revocation with a cut: every other
		// signer record, and every record signed before cuts existed,
		// keeps its bytes and its signature.
		e.arrayLen(len(r.Cut))
		for _, c := range r.Cut {
			e.arrayLen(3)
			e.uint(c.Author.Incarnation)
			e.uint(c.Max)
			e.arrayLen(len(c.Above))
			for _, s := range c.Above {
				e.uint(s)
			}
		}
	}
}

// decodeCut reads a revocation's cut of controller.
func (r *SignerRecord) decodeCut(d *decoder) {
	n := d.arrayLen(MaxCutAuthors)
	r.Cut = make([]AuthorContext, 0, n)
	for range n {
		if d.arrayLen(3) != 3 && d.err == nil {
			d.fail("cut entry of the wrong length")
		}
		c := AuthorContext{Author: Author{Name: r.Controller, Incarnation: d.uint()}, Max: d.uint()}
		if m := d.arrayLen(MaxCutAbove); m > 0 {
			c.Above = make([]uint64, m)
			for i := range c.Above {
				c.Above[i] = d.uint()
			}
		}
		if d.err != nil {
			return
		}
		r.Cut = append(r.Cut, c)
	}
}

func (r *SignerRecord) decodeBody(d *decoder) error {
	r.Controller = d.str(MaxNameLen)
	d.fixed(r.KeyID[:])
	r.Cert = d.bytes(MaxCertLen)
	r.NotAfter = d.millis()
	r.Revoked = d.bool()
	r.RevokedAt = d.millis()
	r.RootSig = d.bytes(MaxRootSigLen)
	return d.err
}

func newRecord(k Kind) Record {
	switch k {
	case KindSession:
		return new(SessionRecord)
	case KindCert:
		return new(CertRecord)
	case KindRevocation:
		return new(RevocationRecord)
	case KindIdentityRevocation:
		return new(IdentityRevocationRecord)
	case KindSigner:
		return new(SignerRecord)
	case KindService:
		return new(ServiceRecord)
	case KindPolicy:
		return new(PolicyRecord)
	case KindIdentityRoles:
		return new(IdentityRolesRecord)
	}
	return nil
}

func encodeRecord(e *encoder, r Record, withSig bool) {
	h := r.Head()
	n := headerFields + bodyFields[r.Kind()]
	if optionalField(r) {
		n++
	}
	if !withSig {
		n--
	} else if h.Batch != nil {
		n++
	}
	e.arrayLen(n)
	e.uint(uint64(r.Kind()))
	e.str(h.Author.Name)
	e.uint(h.Author.Incarnation)
	e.uint(h.Seq)
	e.uint(uint64(h.HLC))
	if withSig {
		sig := h.Sig()
		e.bytes(sig[:])
	}
	r.encodeBody(e)
	if withSig && h.Batch != nil {
		// The last element, after any optional field of the body: a
		// record signed alone keeps its bytes, and a node that knows no
		// batches refuses the record rather than misread it.
		encodeBatch(e, h)
	}
}

func decodeRecord(d *decoder, bd *batchDecoder) Record {
	n := d.arrayLen(headerFields + 10)
	kind := d.uint()
	if d.err != nil {
		return nil
	}
	if kind == 0 || kind > uint64(maxKind) {
		d.fail("record kind %d", kind)
		return nil
	}
	k := Kind(kind)
	r := newRecord(k)
	extraFields := n - (headerFields + bodyFields[k])
	if extraFields < 0 || extraFields > 2 {
		d.fail("%v record of %d fields, want %d", k, n, headerFields+bodyFields[k])
		return nil
	}
	h := r.Head()
	h.Author.Name = d.str(MaxNameLen)
	h.Author.Incarnation = d.uint()
	h.Seq = d.uint()
	h.HLC = Timestamp(d.uint())
	var sig Signature
	d.fixed(sig[:])
	if d.err != nil {
		return nil
	}
	if err := r.decodeBody(d); err != nil {
		return nil
	}
	// What follows the body: the kind's optional field, then a batch
	// proof (a bin, which no optional field is).
	batched := false
	if extraFields > 0 {
		c, err := d.d.PeekCode()
		if err != nil {
			d.wrap(err)
			return nil
		}
		batched = extraFields == 1 && msgpcode.IsBin(c)
	}
	optional := extraFields == 2 || extraFields == 1 && !batched
	if optional && k != KindSigner && k != KindSession {
		d.fail("%v record of %d fields, want %d", k, n, headerFields+bodyFields[k])
		return nil
	}
	batched = batched || extraFields == 2
	if optional {
		switch r := r.(type) {
		case *SignerRecord:
			r.decodeCut(d)
		case *SessionRecord:
			if r.Roles = d.strs(MaxRoles, MaxRoleLen); d.err == nil && len(r.Roles) == 0 {
				// Absent, not empty: the bytes must be the only encoding.
				d.fail("session with an empty roles field")
			}
		}
		if d.err != nil {
			return nil
		}
	}
	if batched {
		if decodeBatch(d, r, sig, bd); d.err != nil {
			return nil
		}
	} else {
		h.SetSig(sig)
	}
	return r
}

// optionalField reports whether r carries its kind's optional last field:
// a signer revocation's cut, a session's claimed roles.
func optionalField(r Record) bool {
	switch r := r.(type) {
	case *SignerRecord:
		return r.Cut != nil
	case *SessionRecord:
		return len(r.Roles) > 0
	}
	return false
}

// SignedBytes returns the canonical bytes of r that its author signs.
func SignedBytes(r Record) []byte {
	e := encoder{b: make([]byte, 0, len(signedPrefix)+EncodedSizeHint(r))}
	e.b = append(e.b, signedPrefix...)
	encodeRecord(&e, r, false)
	return e.b
}

// AppendRecord appends r's wire encoding to b.
func AppendRecord(b []byte, r Record) []byte {
	e := encoder{b: b}
	encodeRecord(&e, r, true)
	return e.b
}

// EncodedSize is the length of r's wire encoding.
func EncodedSize(r Record) int {
	var buf [1024]byte
	return len(AppendRecord(buf[:0], r))
}

// DecodeRecord decodes one record from its wire encoding, which must be the
// whole of b. It checks lengths and the record's own invariants, not its
// signature.
func DecodeRecord(b []byte) (Record, error) { return decodeOne(b, nil) }

func decodeOne(b []byte, bd *batchDecoder) (Record, error) {
	br := bytes.NewReader(b)
	d := &decoder{d: msgpack.NewDecoder(br)} // reads br directly: it is an io.ByteScanner
	r := decodeRecord(d, bd)
	if d.err != nil {
		return nil, d.err
	}
	if br.Len() != 0 {
		return nil, fmt.Errorf("%w: trailing bytes after record", ErrMalformed)
	}
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}

// EncodeRecords and DecodeRecords carry a list of records, as in a delta.
// A list holds at most MaxRecordsPerMessage records.
const MaxRecordsPerMessage = 1 << 16

// EncodeTo writes records as a msgpack array to enc, for callers that embed
// records in their own messages. The bytes do not depend on enc's
// settings.
func EncodeTo(enc *msgpack.Encoder, recs []Record) error {
	size := 5
	for _, r := range recs {
		size += EncodedSizeHint(r)
	}
	e := encoder{b: make([]byte, 0, size), trees: make(map[*Batch][][][32]byte)}
	e.arrayLen(len(recs))
	for _, r := range recs {
		encodeRecord(&e, r, true)
	}
	// msgpack.Encoder keeps no buffer of its own: raw bytes written to its
	// writer land in sequence with what it encodes.
	if _, err := enc.Writer().Write(e.b); err != nil {
		return fmt.Errorf("crdt: encode records: %w", err)
	}
	return nil
}

// DecodeFrom reads an array of at most limit records written by EncodeTo
// (and never more than MaxRecordsPerMessage). Each record is validated;
// signatures are not checked. Memory use follows the input's length, not
// the counts it claims.
func DecodeFrom(dec *msgpack.Decoder, limit int) ([]Record, error) {
	d := &decoder{d: dec}
	n := d.arrayLen(min(max(limit, 0), MaxRecordsPerMessage))
	if d.err != nil {
		return nil, d.err
	}
	recs := make([]Record, 0, min(n, 1024))
	var bd batchDecoder
	defer bd.finish()
	for i := 0; i < n; i++ {
		r := decodeRecord(d, &bd)
		if d.err != nil {
			return nil, d.err
		}
		if err := Validate(r); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// EncodedSizeHint is an upper bound on r's wire encoding, computed without
// encoding it.
func EncodedSizeHint(r Record) int {
	h := r.Head()
	n := 3 + 2 + len(h.Author.Name) + 9 + 9 + 9 + 2 + 64 // array, kind, name, inc, seq, hlc, sig
	if b := h.Batch; b != nil {
		n += 3 + batchFixed + 32*proofLen(int(h.Seq-b.First), b.Count)
	}
	switch r := r.(type) {
	case *SessionRecord:
		n += 18 + 3 + len(r.Identity) + 3 + len(r.Method) + 18
		if len(r.Roles) > 0 {
			n += strsSize(r.Roles)
		}
	case *CertRecord:
		n += 18 + 18 + 3 + len(r.Identity) + 34 + 27 + 18
	case *RevocationRecord:
		n += 2 + 18 + 18 + 3 + len(r.Reason) + 18
	case *IdentityRevocationRecord:
		n += 3 + len(r.Identity) + 9 + 3 + len(r.Reason) + 9
	case *SignerRecord:
		n += 2 + len(r.Controller) + 34 + 3 + len(r.Cert) + 9 + 1 + 9 + 3 + len(r.RootSig)
		if r.Cut != nil {
			n += 3
			for _, c := range r.Cut {
				n += 1 + 9 + 9 + 3 + 9*len(c.Above)
			}
		}
	case *ServiceRecord:
		n += 3 + len(r.Name) + 3 + len(r.Address) + strsSize(r.Roles) + 1
	case *PolicyRecord:
		n += 3 + len(r.Name) + strsSize(r.Identities) + strsSize(r.Services) + 1
	case *IdentityRolesRecord:
		n += 3 + len(r.Identity) + strsSize(r.Roles)
	}
	return n
}
