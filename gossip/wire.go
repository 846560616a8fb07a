package gossip

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Protocol version: the first byte of every message, major in the high
// nibble, minor in the low. A node accepts any minor of its major (newer
// minors only add message types, which older nodes drop and count, and
// fields at the end of a frame's trailer, which they skip) and refuses
// other majors.
//
// Minor 1 added the frame trailer and the sender proof in it (see
// EncodeFrame). A 1.0 node refuses a frame with trailing bytes, so a node
// writes a trailer only to peers that announce 1.1 or later in NodeMeta.
//
// Minor 2 added batch-signed records (crdt.SignBatch): a record's encoding
// may end with its batch proof, which a 1.0 or 1.1 node cannot decode. A
// controller signs in batches only while every member it knows announces
// 1.2 or later (mesh.Mesh.BatchSigning).
const (
	ProtocolMajor   = 1
	ProtocolMinor   = 2
	ProtocolVersion = ProtocolMajor<<4 | ProtocolMinor
)

// MinorTrailer is the first minor whose frames may carry a trailer.
const MinorTrailer = 1

// MinorBatchSig is the first minor that decodes batch-signed records.
const MinorBatchSig = 2

// MsgType numbers the protocol's messages.
//
// WARNING: ONLY APPEND TO THIS LIST! The numeric values are part of the
// protocol itself.
type MsgType uint8

const (
	MsgPush      MsgType = 1 // eager push of a batch along a region tree
	MsgRepairReq MsgType = 2 // "send me author A's seqs (From, To]"
	MsgSyncReq   MsgType = 3 // anti-entropy: here is my causal context
	MsgDelta     MsgType = 4 // records and intervals, answering 2 or 3
	MsgWantReq   MsgType = 5 // pull on miss: do you have this serial?
	MsgWantResp  MsgType = 6 // the records for it, or "not found"
	MsgIHave     MsgType = 7 // lazy push: the dots of a batch, down a lazy tree

	MaxMsgType = MsgIHave // the last type this version knows
)

var msgTypeNames = [...]string{
	MsgPush:      "push",
	MsgRepairReq: "repair_req",
	MsgSyncReq:   "sync_req",
	MsgDelta:     "delta",
	MsgWantReq:   "want_req",
	MsgWantResp:  "want_resp",
	MsgIHave:     "ihave",
}

func (t MsgType) String() string {
	if t == 0 || t > MaxMsgType {
		return fmt.Sprintf("type(%d)", uint8(t))
	}
	return msgTypeNames[t]
}

// Limits on what a message may hold. A message larger than MaxMessageSize
// is refused before decoding.
const (
	MaxMessageSize      = 4 << 20
	MaxRecordsPerMsg    = 1 << 14
	MaxIntervalsPerMsg  = crdt.MaxAuthors
	MaxRegionLen        = 128
	DefaultPacketBudget = 1300
)

// Message is one protocol message, decoded. Which fields are set depends on
// Type. Messages are immutable once built: the simulator shares one
// Message, and the records in it, among all the nodes it is delivered to.
type Message struct {
	Type   MsgType
	SentAt crdt.Millis // sender's wall clock, for skew detection

	// MsgPush, MsgIHave: the batch's origin node and id, which tree the
	// copy travels, and in which region.
	Origin string
	Batch  uint64
	Tree   uint8
	Region string

	// MsgPush, MsgDelta, MsgWantResp.
	Records []crdt.Record
	// MsgDelta; MsgIHave (the batch's dots).
	Intervals []crdt.Interval
	More      bool // the budget cut the delta short; ask again
	// MsgSyncReq: the sender's context. MsgDelta: the sender's context when
	// it wants the receiver to send back what it lacks.
	Context crdt.Context
	// MsgRepairReq.
	Repair crdt.Interval
	// MsgWantReq, MsgWantResp.
	WantID        uint64
	Serial        crdt.Serial
	Found         bool
	Authoritative bool

	size int // encoded size, set by Encode and Decode
}

// Size is the encoded size of m in bytes, once Encode or Decode has seen it.
func (m *Message) Size() int { return m.size }

// ErrMalformed wraps every decoding error; ErrVersion reports a message of
// another major protocol version.
var (
	ErrMalformed = errors.New("gossip: malformed message")
	ErrVersion   = errors.New("gossip: unsupported protocol version")
	ErrTooLarge  = errors.New("gossip: message too large")
)

// Encode returns m's wire form and records its size in m.
func Encode(m *Message) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(ProtocolVersion)
	enc := msgpack.NewEncoder(&buf)
	if err := encodeBody(enc, m); err != nil {
		return nil, fmt.Errorf("gossip: encode %v: %w", m.Type, err)
	}
	m.size = buf.Len()
	return buf.Bytes(), nil
}

func encodeBody(enc *msgpack.Encoder, m *Message) error {
	var err error
	put := func(e error) {
		if err == nil {
			err = e
		}
	}
	put(enc.EncodeArrayLen(3))
	put(enc.EncodeUint(uint64(m.Type)))
	put(enc.EncodeInt(int64(m.SentAt)))
	switch m.Type {
	case MsgPush:
		put(enc.EncodeArrayLen(5))
		put(enc.EncodeString(m.Origin))
		put(enc.EncodeUint(m.Batch))
		put(enc.EncodeUint(uint64(m.Tree)))
		put(enc.EncodeString(m.Region))
		put(crdt.EncodeTo(enc, m.Records))
	case MsgIHave:
		put(enc.EncodeArrayLen(5))
		put(enc.EncodeString(m.Origin))
		put(enc.EncodeUint(m.Batch))
		put(enc.EncodeUint(uint64(m.Tree)))
		put(enc.EncodeString(m.Region))
		put(encodeIntervals(enc, m.Intervals))
	case MsgRepairReq:
		put(enc.EncodeArrayLen(1))
		put(encodeIntervals(enc, []crdt.Interval{m.Repair}))
	case MsgSyncReq:
		put(enc.EncodeArrayLen(1))
		put(encodeContext(enc, m.Context))
	case MsgDelta:
		put(enc.EncodeArrayLen(4))
		put(crdt.EncodeTo(enc, m.Records))
		put(encodeIntervals(enc, m.Intervals))
		put(encodeContext(enc, m.Context))
		put(enc.EncodeBool(m.More))
	case MsgWantReq:
		put(enc.EncodeArrayLen(2))
		put(enc.EncodeUint(m.WantID))
		put(enc.EncodeBytes(m.Serial[:]))
	case MsgWantResp:
		put(enc.EncodeArrayLen(5))
		put(enc.EncodeUint(m.WantID))
		put(enc.EncodeBytes(m.Serial[:]))
		put(enc.EncodeBool(m.Found))
		put(enc.EncodeBool(m.Authoritative))
		put(crdt.EncodeTo(enc, m.Records))
	default:
		return fmt.Errorf("unknown message type %d", m.Type)
	}
	return err
}

func encodeIntervals(enc *msgpack.Encoder, ivs []crdt.Interval) error {
	if err := enc.EncodeArrayLen(len(ivs)); err != nil {
		return err
	}
	for _, iv := range ivs {
		for _, err := range []error{
			enc.EncodeArrayLen(4),
			enc.EncodeString(iv.Author.Name),
			enc.EncodeUint(iv.Author.Incarnation),
			enc.EncodeUint(iv.From),
			enc.EncodeUint(iv.To),
		} {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// encodeContext writes c; a nil context (a delta that asks nothing back)
// travels as nil, unlike an empty one (a node that has nothing yet and asks
// for everything).
func encodeContext(enc *msgpack.Encoder, c crdt.Context) error {
	if c == nil {
		return enc.EncodeNil()
	}
	if err := enc.EncodeArrayLen(len(c)); err != nil {
		return err
	}
	for _, a := range c {
		if err := enc.EncodeArrayLen(4); err != nil {
			return err
		}
		if err := enc.EncodeString(a.Author.Name); err != nil {
			return err
		}
		if err := enc.EncodeUint(a.Author.Incarnation); err != nil {
			return err
		}
		if err := enc.EncodeUint(a.Max); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(a.Above)); err != nil {
			return err
		}
		for _, s := range a.Above {
			if err := enc.EncodeUint(s); err != nil {
				return err
			}
		}
	}
	return nil
}

// Decode parses a message. It never panics and allocates in proportion to
// len(b): every length is checked against the bytes that remain and the
// limits above. Records are validated but not verified.
func Decode(b []byte) (*Message, error) {
	_, m, err := decode(b, false)
	return m, err
}

// Frames are what gossip/mesh sends over memberlist, whose user messages do
// not say who sent them: the version byte, the sender's name as a msgpack
// string, then the message as Encode writes it after its version byte,
// then, since minor 1, an optional trailer. The name is self-asserted by
// any holder of the gossip key: alone it tells where to send answers,
// never whom to trust.
//
// The trailer is a msgpack array of fields appended to the frame.
// WARNING: ONLY APPEND TO THIS LIST! A node reads the fields it knows and
// ignores the rest, which end the frame. Field 0 is the sender's proof,
// or nil:
//
//	[recipient string, certificate bin (DER), signature bin (64 bytes)]
//
// The signature is pki.SignNodeProof by the key of the certificate, over
// the recipient's name and every byte of the frame before the trailer. A
// receiver takes the sender as proven (NodeAuth) only if the certificate
// is issued directly by the root for the sender's name in the trust
// domain, the recipient is itself, and the frame is not older than the
// last one it took from that sender: a frame captured by one node proves
// nothing to another, nor a second time.

// EncodeFrame returns the frame of m sent by from. It does not change m,
// so one Message may be framed by its sender while others read it.
func EncodeFrame(from string, m *Message) ([]byte, error) {
	if from == "" || len(from) > crdt.MaxNameLen {
		return nil, fmt.Errorf("gossip: encode frame: sender name of %d bytes", len(from))
	}
	var buf bytes.Buffer
	buf.WriteByte(ProtocolVersion)
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeString(from); err != nil {
		return nil, fmt.Errorf("gossip: encode frame: %w", err)
	}
	if err := encodeBody(enc, m); err != nil {
		return nil, fmt.Errorf("gossip: encode %v: %w", m.Type, err)
	}
	return buf.Bytes(), nil
}

// DecodeFrame parses a frame, with the same guarantees as Decode. The
// message's Size is the frame's. It ignores the frame's proof, if any:
// see ParseFrame.
func DecodeFrame(b []byte) (from string, m *Message, err error) {
	f, err := decodeFrame(b, true)
	if err != nil {
		return "", nil, err
	}
	return f.From, f.Msg, nil
}

// Limits on a frame's trailer and proof.
const (
	maxTrailerFields = 16
	maxProofCertLen  = 4 << 10 // a certmesh node certificate takes about 600 bytes
)

// Proof is a frame's sender proof (see EncodeFrame).
type Proof struct {
	// Recipient is the node the frame was sent to; empty for any node (a
	// memberlist push-pull, whose delegate is not told the peer).
	Recipient string
	Cert      []byte // the sender's certificate, DER
	Sig       [pki.NodeProofSize]byte
}

// Frame is a decoded frame.
type Frame struct {
	From  string // the sender's name as the frame claims it
	Msg   *Message
	Proof *Proof // nil if the frame carries none
	// Signed is the part of the frame a proof covers: every byte before
	// the trailer. It aliases the decoded bytes.
	Signed []byte
}

// ParseFrame parses a frame and its trailer, with the same guarantees as
// Decode. It does not check the proof: NodeAuth does.
func ParseFrame(b []byte) (*Frame, error) { return decodeFrame(b, true) }

// AppendProof returns frame followed by a trailer carrying p. frame must
// have no trailer yet; it is not modified.
func AppendProof(frame []byte, p *Proof) ([]byte, error) {
	if len(p.Recipient) > crdt.MaxNameLen || len(p.Cert) == 0 || len(p.Cert) > maxProofCertLen {
		return nil, fmt.Errorf("gossip: proof for a recipient of %d bytes with a certificate of %d", len(p.Recipient), len(p.Cert))
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(frame)+ProofOverhead(len(p.Recipient), len(p.Cert))))
	buf.Write(frame)
	enc := msgpack.NewEncoder(buf)
	var err error
	for _, e := range []error{
		enc.EncodeArrayLen(1),
		enc.EncodeArrayLen(3),
		enc.EncodeString(p.Recipient),
		enc.EncodeBytes(p.Cert),
		enc.EncodeBytes(p.Sig[:]),
	} {
		err = cmp.Or(err, e)
	}
	if err != nil {
		return nil, fmt.Errorf("gossip: encode proof: %w", err)
	}
	return buf.Bytes(), nil
}

// ProofOverhead is the size of a trailer carrying a proof for a recipient
// name and a certificate of the given lengths: what a proof adds to a
// frame.
func ProofOverhead(recipient, cert int) int {
	return 1 + 1 + msgpackLenSize(recipient, true) + recipient +
		msgpackLenSize(cert, false) + cert + 2 + pki.NodeProofSize
}

// msgpackLenSize is the size of the header of a msgpack string or binary
// of n bytes.
func msgpackLenSize(n int, str bool) int {
	switch {
	case str && n < 32:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	}
	return 5
}

func decode(b []byte, framed bool) (string, *Message, error) {
	f, err := decodeFrame(b, framed)
	if err != nil {
		return "", nil, err
	}
	return f.From, f.Msg, nil
}

func decodeFrame(b []byte, framed bool) (*Frame, error) {
	if len(b) > MaxMessageSize {
		return nil, ErrTooLarge
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if b[0]>>4 != ProtocolMajor {
		return nil, fmt.Errorf("%w: major %d, this node speaks %d", ErrVersion, b[0]>>4, ProtocolMajor)
	}
	r := bytes.NewReader(b[1:])
	d := &decoder{d: msgpack.NewDecoder(r)}
	m := &Message{size: len(b)}
	var from string
	if framed {
		if from = d.str(crdt.MaxNameLen); d.err == nil && from == "" {
			d.fail("frame without sender")
		}
	}
	if n := d.arrayLen(3); d.err == nil && n != 3 {
		d.fail("envelope of %d fields", n)
	}
	m.Type = MsgType(d.uint(255))
	m.SentAt = crdt.Millis(d.int())
	if d.err != nil {
		return nil, d.err
	}
	nf := d.arrayLen(8)
	want := map[MsgType]int{MsgPush: 5, MsgRepairReq: 1, MsgSyncReq: 1, MsgDelta: 4, MsgWantReq: 2, MsgWantResp: 5, MsgIHave: 5}[m.Type]
	if want == 0 {
		return nil, fmt.Errorf("%w: unknown message type %d", ErrMalformed, m.Type)
	}
	if d.err == nil && nf != want {
		d.fail("%v of %d fields, want %d", m.Type, nf, want)
	}
	if d.err != nil {
		return nil, d.err
	}
	switch m.Type {
	case MsgPush:
		m.Origin = d.str(crdt.MaxNameLen)
		m.Batch = d.uint(1<<64 - 1)
		m.Tree = uint8(d.uint(255))
		m.Region = d.str(MaxRegionLen)
		m.Records = d.records()
	case MsgIHave:
		m.Origin = d.str(crdt.MaxNameLen)
		m.Batch = d.uint(1<<64 - 1)
		m.Tree = uint8(d.uint(255))
		m.Region = d.str(MaxRegionLen)
		m.Intervals = d.intervals()
	case MsgRepairReq:
		ivs := d.intervals()
		if d.err == nil && len(ivs) != 1 {
			d.fail("repair of %d intervals", len(ivs))
		}
		if d.err == nil {
			m.Repair = ivs[0]
		}
	case MsgSyncReq:
		m.Context = d.context()
	case MsgDelta:
		m.Records = d.records()
		m.Intervals = d.intervals()
		m.Context = d.context()
		m.More = d.bool()
	case MsgWantReq:
		m.WantID = d.uint(1<<64 - 1)
		d.fixed(m.Serial[:])
	case MsgWantResp:
		m.WantID = d.uint(1<<64 - 1)
		d.fixed(m.Serial[:])
		m.Found = d.bool()
		m.Authoritative = d.bool()
		m.Records = d.records()
	}
	if d.err != nil {
		return nil, d.err
	}
	f := &Frame{From: from, Msg: m, Signed: b[:len(b)-r.Len()]}
	if r.Len() != 0 && framed && b[0]&0xf >= MinorTrailer {
		f.Proof = d.trailer(r)
		if d.err != nil {
			return nil, d.err
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, r.Len())
	}
	return f, nil
}

// trailer reads a frame's trailer: its proof, if any. Fields after those
// this node knows end the frame and are left unread (r is drained).
func (d *decoder) trailer(r *bytes.Reader) *Proof {
	n := d.arrayLen(maxTrailerFields)
	if d.err == nil && n == 0 {
		d.fail("empty trailer")
	}
	if d.err != nil {
		return nil
	}
	var p *Proof
	if code, err := d.d.PeekCode(); !d.check(err) {
		return nil
	} else if code == msgpcode.Nil {
		d.check(d.d.DecodeNil())
	} else {
		if k := d.arrayLen(3); d.err == nil && k != 3 {
			d.fail("proof of %d fields", k)
		}
		p = &Proof{Recipient: d.str(crdt.MaxNameLen)}
		p.Cert = d.bin(maxProofCertLen)
		d.fixed(p.Sig[:])
		if d.err == nil && len(p.Cert) == 0 {
			d.fail("proof without a certificate")
		}
	}
	if d.err != nil {
		return nil
	}
	if n > 1 {
		r.Reset(nil) // fields appended by a newer minor
	}
	return p
}

// decoder wraps msgpack.Decoder with a sticky error.
type decoder struct {
	d   *msgpack.Decoder
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) check(err error) bool {
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return d.err == nil
}

func (d *decoder) uint(max uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.d.DecodeUint64()
	if d.check(err) && v > max {
		d.fail("value %d over %d", v, max)
	}
	return v
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.d.DecodeInt64()
	d.check(err)
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	v, err := d.d.DecodeBool()
	d.check(err)
	return v
}

func (d *decoder) arrayLen(max int) int {
	if d.err != nil {
		return 0
	}
	n, err := d.d.DecodeArrayLen()
	if d.check(err) && (n < 0 || n > max) {
		d.fail("array of %d over limit %d", n, max)
		return 0
	}
	return n
}

func (d *decoder) str(max int) string {
	if d.err != nil {
		return ""
	}
	n, err := d.d.DecodeBytesLen()
	if !d.check(err) || n <= 0 {
		return ""
	}
	if n > max {
		d.fail("string of %d bytes over limit %d", n, max)
		return ""
	}
	b := make([]byte, n)
	d.check(d.d.ReadFull(b))
	return string(b)
}

func (d *decoder) bin(max int) []byte {
	if d.err != nil {
		return nil
	}
	n, err := d.d.DecodeBytesLen()
	if !d.check(err) || n <= 0 {
		return nil
	}
	if n > max {
		d.fail("binary of %d bytes over limit %d", n, max)
		return nil
	}
	b := make([]byte, n)
	d.check(d.d.ReadFull(b))
	return b
}

func (d *decoder) fixed(dst []byte) {
	if d.err != nil {
		return
	}
	n, err := d.d.DecodeBytesLen()
	if !d.check(err) {
		return
	}
	if n != len(dst) {
		d.fail("field of %d bytes, want %d", n, len(dst))
		return
	}
	d.check(d.d.ReadFull(dst))
}

func (d *decoder) records() []crdt.Record {
	if d.err != nil {
		return nil
	}
	recs, err := crdt.DecodeFrom(d.d, MaxRecordsPerMsg)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return recs
}

func (d *decoder) author() crdt.Author {
	return crdt.Author{Name: d.str(crdt.MaxNameLen), Incarnation: d.uint(1<<64 - 1)}
}

func (d *decoder) intervals() []crdt.Interval {
	n := d.arrayLen(MaxIntervalsPerMsg)
	var ivs []crdt.Interval
	for i := 0; i < n && d.err == nil; i++ {
		if k := d.arrayLen(4); d.err == nil && k != 4 {
			d.fail("interval of %d fields", k)
		}
		iv := crdt.Interval{Author: d.author()}
		iv.From = d.uint(1<<64 - 1)
		iv.To = d.uint(1<<64 - 1)
		if d.err == nil && (iv.Author.Name == "" || iv.To < iv.From) {
			d.fail("interval %v (%d, %d]", iv.Author, iv.From, iv.To)
		}
		ivs = append(ivs, iv)
	}
	return ivs
}

func (d *decoder) context() crdt.Context {
	if d.err != nil {
		return nil
	}
	if code, err := d.d.PeekCode(); !d.check(err) {
		return nil
	} else if code == msgpcode.Nil {
		d.check(d.d.DecodeNil())
		return nil
	}
	n := d.arrayLen(crdt.MaxAuthors)
	c := make(crdt.Context, 0, min(n, 64))
	for i := 0; i < n && d.err == nil; i++ {
		if k := d.arrayLen(4); d.err == nil && k != 4 {
			d.fail("context entry of %d fields", k)
		}
		a := crdt.AuthorContext{Author: d.author()}
		a.Max = d.uint(1<<64 - 1)
		na := d.arrayLen(crdt.MaxSeqAhead)
		for j := 0; j < na && d.err == nil; j++ {
			a.Above = append(a.Above, d.uint(1<<64-1))
		}
		c = append(c, a)
	}
	if d.err == nil {
		if err := c.Validate(); err != nil {
			d.fail("context: %v", err)
		}
	}
	return c
}
