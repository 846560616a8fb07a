package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// SnapshotFile is the name of the state snapshot in the data directory.
const SnapshotFile = "state.snapshot"

// LoadSnapshot returns a store holding the snapshot in dataDir and the
// revocation journals written since (an empty store if there are none
// yet), and how many records it restored. Both are the router's own
// (written by SaveSnapshot and the event loop), so their records are
// trusted as verified. Call it before creating the mesh with the store.
func LoadSnapshot(dataDir string) (*crdt.Store, int, error) {
	store := crdt.NewStore()
	if dataDir == "" {
		return store, 0, nil
	}
	n, err := restoreSnapshot(filepath.Join(dataDir, SnapshotFile), store)
	if err != nil {
		return nil, 0, err
	}
	m, err := replayJournals(dataDir, store)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (move the journals away to start from the snapshot alone)", err)
	}
	return store, n + m, nil
}

func restoreSnapshot(path string, store *crdt.Store) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("router: snapshot: %w", err)
	}
	defer f.Close()
	snap, err := crdt.DecodeSnapshot(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		// Starting empty would forget revocations: the operator decides.
		return 0, fmt.Errorf("router: snapshot %s: %w (move it away to start from an empty state)", path, err)
	}
	if err := store.RestoreVerified(snap); err != nil {
		return 0, fmt.Errorf("router: snapshot %s: %w", path, err)
	}
	return len(snap.Records), nil
}

// SaveSnapshot writes the store to the data directory atomically (temp
// file, fsync, rename, fsync of the directory) if it changed since the last
// write. Under the mesh's lock, which admission lookups take, it only takes
// the list of records (crdt.Store.Snapshot); the encoding and the I/O
// happen after.
func (r *Router) SaveSnapshot() error {
	if r.cfg.DataDir == "" {
		return nil
	}
	r.snapMu.Lock()
	defer r.snapMu.Unlock()
	// Journal generations before this one hold only records applied
	// before the store is read below, so the snapshot covers them.
	covered, err := r.journal.rotate()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	var digest uint64
	var n int
	var snap *crdt.Snapshot
	r.mesh.View(func(s *crdt.Store) {
		digest, n = s.Digest(), s.Len()
		if r.snapWrote && digest == r.snapDigest {
			return
		}
		snap = s.Snapshot()
	})
	if snap == nil { // unchanged
		return r.journal.removeBefore(covered)
	}
	if err := snap.Encode(&buf); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	start := time.Now()
	if err := writeAtomic(filepath.Join(r.cfg.DataDir, SnapshotFile), buf.Bytes()); err != nil {
		return err
	}
	r.snapDigest, r.snapWrote = digest, true
	if err := r.journal.removeBefore(covered); err != nil {
		return err
	}
	r.log.Debug("router: snapshot written", "records", n, "bytes", buf.Len(), "took", time.Since(start))
	return nil
}

func (r *Router) snapshotLoop() {
	defer r.loops.Done()
	t := time.NewTicker(r.cfg.SnapshotInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := r.SaveSnapshot(); err != nil {
				r.log.Error("router: snapshot", "err", err)
			}
		case <-r.ctx.Done():
			return // Shutdown writes the last one
		}
	}
}

// writeAtomic replaces path with data so that a crash leaves either the
// old file or the new one.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	f, err := os.CreateTemp(dir, ".snapshot-*")
	if err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("router: snapshot: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
