package router

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/certmesh/certmesh/crdt"
)

// The revocation journal keeps what the snapshot alone would lose: a
// router that crashes a few seconds after a revocation reached it must
// still refuse the revoked certificate when it comes back with no
// controller reachable (docs/deploy.md). The snapshot is rewritten every
// SnapshotInterval; between two snapshots every revocation, identity
// revocation and signer record the router applies is appended to a journal
// file and synced. LoadSnapshot replays the journals over the snapshot.
//
// The journal is split into generations, revocations.<n>.journal. A
// snapshot starts a new generation before it reads the store, so every
// record in an older generation is in the snapshot, and deletes the older
// generations once the snapshot is on disk. A crash at any point leaves
// the snapshot and journals that together hold every synced record.

// journalFrame is the per-record header: payload length and CRC-32C. A
// torn write at the tail fails the check and ends the replay there.
const journalFrame = 8

// maxJournalRecord bounds one payload, far above any record (a signer
// record with its chain is a few kilobytes).
const maxJournalRecord = 1 << 20

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// journaled reports whether r goes into the journal: the records that
// take admission away, signer records (a revoked signer is one), and
// access records.
func journaled(r crdt.Record) bool {
	switch r.(type) {
	case *crdt.RevocationRecord, *crdt.IdentityRevocationRecord, *crdt.SignerRecord,
		// Access changes too: a removal must not be undone by a restart
		// before the next snapshot, and a register's records replay to
		// the same answer in any order.
		*crdt.ServiceRecord, *crdt.PolicyRecord, *crdt.IdentityRolesRecord:
		return true
	}
	return false
}

// journal is one router's revocation journal. A nil *journal (a router
// without a data directory) keeps nothing.
type journal struct {
	dir string

	mu      sync.Mutex // guards the fields below
	f       *os.File
	gen     uint64
	written bool // whether generation gen holds a record
}

func journalName(gen uint64) string { return fmt.Sprintf("revocations.%d.journal", gen) }

// journalGens lists the generations in dir, oldest first.
func journalGens(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var gens []uint64
	for _, e := range entries {
		mid, ok := strings.CutPrefix(e.Name(), "revocations.")
		if !ok {
			continue
		}
		mid, ok = strings.CutSuffix(mid, ".journal")
		if !ok {
			continue
		}
		if g, err := strconv.ParseUint(mid, 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// openJournal starts a generation after every one already in dir.
func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("router: journal: %w", err)
	}
	gens, err := journalGens(dir)
	if err != nil {
		return nil, fmt.Errorf("router: journal: %w", err)
	}
	j := &journal{dir: dir}
	if len(gens) > 0 {
		j.gen = gens[len(gens)-1]
	}
	if err := j.next(); err != nil {
		return nil, err
	}
	return j, nil
}

// next closes the current generation and opens the following one.
func (j *journal) next() error {
	f, err := os.OpenFile(filepath.Join(j.dir, journalName(j.gen+1)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("router: journal: %w", err)
	}
	// The new file's name must survive a crash as its records will.
	if d, err := os.Open(j.dir); err == nil {
		d.Sync()
		d.Close()
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.gen, j.written = f, j.gen+1, false
	return nil
}

// append writes the journaled records of recs and syncs them.
func (j *journal) append(recs []crdt.Record) error {
	if j == nil {
		return nil
	}
	var buf []byte
	var rw crdt.RecordWriter // a batch's proofs from one tree
	for _, r := range recs {
		if !journaled(r) {
			continue
		}
		start := len(buf)
		buf = append(buf, make([]byte, journalFrame)...)
		buf = rw.Append(buf, r)
		payload := buf[start+journalFrame:]
		binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
		binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crc32c))
	}
	if len(buf) == 0 {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("router: journal closed")
	}
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("router: journal: %w", err)
	}
	j.written = true
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("router: journal: %w", err)
	}
	return nil
}

// rotate starts a new generation if the current one holds records and
// returns the first generation a snapshot taken from now on does not
// cover.
func (j *journal) rotate() (uint64, error) {
	if j == nil {
		return 0, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.written {
		if err := j.next(); err != nil {
			return 0, err
		}
	}
	return j.gen, nil
}

// removeBefore deletes the generations older than gen, which a snapshot
// on disk now covers.
func (j *journal) removeBefore(gen uint64) error {
	if j == nil {
		return nil
	}
	gens, err := journalGens(j.dir)
	if err != nil {
		return fmt.Errorf("router: journal: %w", err)
	}
	for _, g := range gens {
		if g >= gen {
			break
		}
		if err := os.Remove(filepath.Join(j.dir, journalName(g))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("router: journal: %w", err)
		}
	}
	return nil
}

func (j *journal) close() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// replayJournals merges the journaled records in dir into store, oldest
// generation first, and returns how many it read. A torn or corrupt tail
// ends a file's replay: what follows it was never synced.
func replayJournals(dir string, store *crdt.Store) (int, error) {
	gens, err := journalGens(dir)
	if err != nil {
		return 0, fmt.Errorf("router: journal: %w", err)
	}
	n := 0
	for _, g := range gens {
		data, err := os.ReadFile(filepath.Join(dir, journalName(g)))
		if err != nil {
			return n, fmt.Errorf("router: journal: %w", err)
		}
		recs, _ := decodeJournal(data)
		for _, r := range recs {
			if _, err := store.MergeVerified(r); err != nil {
				return n, fmt.Errorf("router: journal %s: %v: %w", journalName(g), r.Head().Dot(), err)
			}
			n++
		}
	}
	return n, nil
}

// decodeJournal returns the records of one journal file up to its first
// torn or corrupt frame, and the error that ended it (nil at a clean end).
func decodeJournal(data []byte) ([]crdt.Record, error) {
	var recs []crdt.Record
	var rd crdt.RecordReader // the records of a batch share it
	defer rd.Finish()
	for len(data) > 0 {
		if len(data) < journalFrame {
			return recs, io.ErrUnexpectedEOF
		}
		n := binary.LittleEndian.Uint32(data)
		sum := binary.LittleEndian.Uint32(data[4:])
		if n > maxJournalRecord || int(n) > len(data)-journalFrame {
			return recs, io.ErrUnexpectedEOF
		}
		payload := data[journalFrame : journalFrame+int(n)]
		if crc32.Checksum(payload, crc32c) != sum {
			return recs, errors.New("checksum mismatch")
		}
		r, err := rd.Decode(payload)
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
		data = data[journalFrame+int(n):]
	}
	return recs, nil
}
