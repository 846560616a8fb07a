package issuer

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/certmesh/certmesh/crdt"
)

// DBFile is the bbolt file under node.data_dir.
const DBFile = "certmesh.db"

// Buckets and meta keys of the bbolt file.
//
//	meta:     incarnation → uint64, next_seq → uint64
//	records:  author name, 0x00, incarnation (8), seq (8) → crdt wire encoding
//	coverage: author name, 0x00, incarnation (8) → max (8), above... (8 each)
//
// coverage holds, for every author but this controller, the dots whose
// records were persisted here (the records themselves may since have been
// collected). This controller's own coverage is 1..next_seq-1: it persists
// every record it writes before sending it.
var (
	bucketMeta     = []byte("meta")
	bucketRecords  = []byte("records")
	bucketCoverage = []byte("coverage")
	keyIncarnation = []byte("incarnation")
	keyNextSeq     = []byte("next_seq")
)

// durable is the controller's bbolt store. Its methods other than open and
// close are called from the committer goroutine only (and from Open before
// it starts).
type durable struct {
	db          *bolt.DB
	incarnation uint64
	nextSeq     uint64 // the next seq this author will use, as persisted

	// coverage is the dots of other authors persisted so far.
	coverage map[crdt.Author]*coverage
}

// coverage is a set of seqs: all of 1..max, and above.
type coverage struct {
	max   uint64
	above map[uint64]struct{}
}

func (c *coverage) has(seq uint64) bool {
	if seq <= c.max {
		return true
	}
	_, ok := c.above[seq]
	return ok
}

func (c *coverage) add(seq uint64) {
	switch {
	case seq <= c.max:
		return
	case seq == c.max+1:
		c.max++
		for {
			if _, ok := c.above[c.max+1]; !ok {
				break
			}
			delete(c.above, c.max+1)
			c.max++
		}
	default:
		if c.above == nil {
			c.above = make(map[uint64]struct{})
		}
		c.above[seq] = struct{}{}
	}
}

func (c *coverage) context(a crdt.Author) crdt.AuthorContext {
	ac := crdt.AuthorContext{Author: a, Max: c.max}
	for s := range c.above {
		ac.Above = append(ac.Above, s)
	}
	slices.Sort(ac.Above)
	return ac
}

func (c *coverage) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.max)
	for _, s := range c.context(crdt.Author{}).Above {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

func decodeCoverage(b []byte) (*coverage, error) {
	if len(b) < 8 || len(b)%8 != 0 {
		return nil, fmt.Errorf("coverage entry of %d bytes", len(b))
	}
	c := &coverage{max: binary.BigEndian.Uint64(b)}
	for i := 8; i < len(b); i += 8 {
		c.add(binary.BigEndian.Uint64(b[i:]))
	}
	return c, nil
}

func authorKey(a crdt.Author) []byte {
	k := make([]byte, 0, len(a.Name)+9)
	k = append(k, a.Name...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, a.Incarnation)
}

func parseAuthorKey(k []byte) (crdt.Author, []byte, error) {
	i := bytes.IndexByte(k, 0)
	if i <= 0 || len(k) < i+9 {
		return crdt.Author{}, nil, fmt.Errorf("malformed key %x", k)
	}
	return crdt.Author{Name: string(k[:i]), Incarnation: binary.BigEndian.Uint64(k[i+1 : i+9])}, k[i+9:], nil
}

func recordKey(h *crdt.Header) []byte {
	return binary.BigEndian.AppendUint64(authorKey(h.Author), h.Seq)
}

// openDurable opens (creating if need be) the store under dir and reads
// everything in it. A new store gets a fresh random incarnation.
func openDurable(dir string) (*durable, []crdt.Record, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("issuer: data dir: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, fmt.Errorf("issuer: %s is in use by another process", path)
		}
		return nil, nil, fmt.Errorf("issuer: open %s: %w", path, err)
	}
	d := &durable{db: db, coverage: make(map[crdt.Author]*coverage)}
	var recs []crdt.Record
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{bucketRecords, bucketCoverage} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if v := meta.Get(keyIncarnation); len(v) == 8 {
			d.incarnation = binary.BigEndian.Uint64(v)
			v = meta.Get(keyNextSeq)
			if len(v) != 8 {
				return errors.New("next_seq missing")
			}
			d.nextSeq = binary.BigEndian.Uint64(v)
		} else {
			// A new store: an incarnation no earlier life of this
			// controller can have used, so its dots never collide.
			for d.incarnation == 0 {
				var b [8]byte
				if _, err := rand.Read(b[:]); err != nil {
					return err
				}
				d.incarnation = binary.BigEndian.Uint64(b[:])
			}
			d.nextSeq = 1
			if err := meta.Put(keyIncarnation, binary.BigEndian.AppendUint64(nil, d.incarnation)); err != nil {
				return err
			}
			if err := meta.Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, d.nextSeq)); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketCoverage).ForEach(func(k, v []byte) error {
			a, rest, err := parseAuthorKey(k)
			if err != nil || len(rest) != 0 {
				return fmt.Errorf("coverage: malformed key %x", k)
			}
			c, err := decodeCoverage(v)
			if err != nil {
				return fmt.Errorf("coverage of %v: %w", a, err)
			}
			d.coverage[a] = c
			return nil
		}); err != nil {
			return err
		}
		var rd crdt.RecordReader // the records of a batch share it
		defer rd.Finish()
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			r, err := rd.Decode(v)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			if !bytes.Equal(k, recordKey(r.Head())) {
				return fmt.Errorf("record %x is stored under the key of another", k)
			}
			recs = append(recs, r)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("issuer: %s: %w", path, err)
	}
	return d, recs, nil
}

// snapshot builds the crdt snapshot that restores recs, read from disk, with
// the coverage of collected dots, for the controller writing as self.
func (d *durable) snapshot(self crdt.Author, recs []crdt.Record) *crdt.Snapshot {
	var ctx crdt.Context
	for a, c := range d.coverage {
		if a != self {
			ctx = append(ctx, c.context(a))
		}
	}
	if d.nextSeq > 1 {
		ctx = append(ctx, crdt.AuthorContext{Author: self, Max: d.nextSeq - 1})
	}
	slices.SortFunc(ctx, func(x, y crdt.AuthorContext) int {
		if c := cmp.Compare(x.Author.Name, y.Author.Name); c != 0 {
			return c
		}
		return cmp.Compare(x.Author.Incarnation, y.Author.Incarnation)
	})
	return &crdt.Snapshot{Context: ctx, Records: recs}
}

// commit persists, in one transaction, the records this controller wrote
// (own, in seq order, with nextSeq the seq after them) and records received
// from peers. Received records already persisted are skipped. It returns
// how many received records were written.
func (d *durable) commit(self crdt.Author, own []crdt.Record, nextSeq uint64, received []crdt.Record) (int, error) {
	touched := make(map[crdt.Author]bool)
	var fresh []crdt.Record
	for _, r := range received {
		h := r.Head()
		if h.Author == self {
			continue
		}
		if c := d.coverage[h.Author]; c != nil && c.has(h.Seq) {
			continue
		}
		fresh = append(fresh, r)
	}
	if len(own) == 0 && len(fresh) == 0 && nextSeq <= d.nextSeq {
		return 0, nil
	}
	// Stage coverage changes, applied once the transaction commits.
	staged := make(map[crdt.Author]*coverage)
	for _, r := range fresh {
		h := r.Head()
		c := staged[h.Author]
		if c == nil {
			c = &coverage{}
			if old := d.coverage[h.Author]; old != nil {
				c.max = old.max
				for s := range old.above {
					c.add(s)
				}
			}
			staged[h.Author] = c
		}
		c.add(h.Seq)
		touched[h.Author] = true
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRecords)
		var rw crdt.RecordWriter // a batch's proofs from one tree
		put := func(r crdt.Record) error {
			// bbolt keeps the value until the commit: one buffer each.
			return rb.Put(recordKey(r.Head()), rw.Append(nil, r))
		}
		for _, r := range own {
			if err := put(r); err != nil {
				return err
			}
		}
		for _, r := range fresh {
			if err := put(r); err != nil {
				return err
			}
		}
		if nextSeq > d.nextSeq {
			if err := tx.Bucket(bucketMeta).Put(keyNextSeq, binary.BigEndian.AppendUint64(nil, nextSeq)); err != nil {
				return err
			}
		}
		cb := tx.Bucket(bucketCoverage)
		for a := range touched {
			if err := cb.Put(authorKey(a), staged[a].encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("issuer: persist: %w", err)
	}
	if nextSeq > d.nextSeq {
		d.nextSeq = nextSeq
	}
	for a, c := range staged {
		d.coverage[a] = c
	}
	return len(fresh), nil
}

// collect deletes the records that can no longer matter anywhere, by the
// rule crdt.Store.Collect applies in memory (crdt.Retention): the disk and
// the store keep the same records, so a restart never loses a revocation
// the store still holds. Their dots stay covered: this controller's by
// next_seq, others' by the coverage bucket. It returns how many it
// deleted.
//
// The rule needs every revocation before it can judge a session or a
// certificate, and every session and certificate covered by a revocation
// before it can judge that revocation: the records are read twice, and the
// revocations old enough to go are kept in memory between the two reads.
func (d *durable) collect(now time.Time, slack time.Duration) (int, error) {
	rule := crdt.NewRetention(crdt.MillisOf(now), slack)
	horizon := crdt.MillisOf(now.Add(-crdt.MinRetention))
	type candidate struct {
		key []byte
		r   crdt.Record
	}
	n := 0
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		var revocations []candidate
		err := b.ForEach(func(k, v []byte) error {
			r, err := crdt.DecodeRecord(v)
			if err != nil {
				return nil // reported at open; left for an operator
			}
			rule.NoteRevocation(r)
			if _, ok := r.(*crdt.RevocationRecord); ok && r.Head().HLC.Millis() <= horizon {
				revocations = append(revocations, candidate{slices.Clone(k), r})
			}
			return nil
		})
		if err != nil {
			return err
		}
		var victims [][]byte
		err = b.ForEach(func(k, v []byte) error {
			r, err := crdt.DecodeRecord(v)
			if err != nil {
				return nil
			}
			rule.NoteTarget(r)
			if _, ok := r.(*crdt.RevocationRecord); !ok && rule.Collectable(r) {
				victims = append(victims, slices.Clone(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range revocations {
			if rule.Collectable(c.r) {
				victims = append(victims, c.key)
			}
		}
		for _, k := range victims {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(victims)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("issuer: collect: %w", err)
	}
	return n, nil
}

func (d *durable) close() error { return d.db.Close() }
