package gossip

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/trust"
)

// ingest verifies and merges received records. Intervals are covered only
// for authors all of whose records in the message were merged or already
// covered: a held or refused record leaves its gap open. It reports whether
// every record verified (merged, already covered, or held only until local
// time reaches its HLC); only such a push is relayed.
func (c *Core) ingest(now time.Time, from string, recs []crdt.Record, intervals []crdt.Interval) bool {
	in := ingestion{from: from, recs: recs}
	c.ingestSome(now, &in, len(recs))
	return c.ingestEnd(now, &in, intervals)
}

// ingestion is the progress of ingest through one message's records, so
// that a driver may merge a long message a slice at a time (Stepping),
// with the same outcome as merging it at once.
type ingestion struct {
	from       string
	recs       []crdt.Record
	next       int                  // the first record not yet accepted
	incomplete map[crdt.Author]bool // authors with a record held or refused
	signers    bool                 // a signer record merged
	refused    bool                 // a record refused or held for its signer
}

// ingestSome verifies and merges up to n more of in's records, in order,
// and returns how many remain.
func (c *Core) ingestSome(now time.Time, in *ingestion, n int) int {
	end := min(len(in.recs), in.next+max(n, 0))
	for _, r := range in.recs[in.next:end] {
		res := c.accept(now, r)
		switch res {
		case acceptMerged:
			if _, ok := r.(*crdt.SignerRecord); ok {
				in.signers = true
			}
			c.noteGap(now, in.from, r.Head())
		case acceptHeld, acceptHeldSigner, acceptRefused:
			if res != acceptHeld {
				in.refused = true
			}
			if in.incomplete == nil {
				in.incomplete = make(map[crdt.Author]bool)
			}
			in.incomplete[r.Head().Author] = true
		}
	}
	in.next = end
	return len(in.recs) - end
}

// ingestEnd finishes an ingestion once every record went through
// ingestSome: see ingest.
func (c *Core) ingestEnd(now time.Time, in *ingestion, intervals []crdt.Interval) bool {
	if in.signers {
		c.retryHeld(now, true)
	}
	for _, iv := range intervals {
		if !in.incomplete[iv.Author] {
			c.store.CoverInterval(iv, crdt.MillisOf(now))
		}
	}
	return !in.refused
}

type acceptResult int

const (
	acceptDuplicate  acceptResult = iota
	acceptMerged                  // verified and merged
	acceptHeld                    // verified, waits for local time to reach its HLC
	acceptHeldSigner              // waits for its author's signer record
	acceptRefused
)

// accept verifies and merges one record.
func (c *Core) accept(now time.Time, r crdt.Record) acceptResult {
	h := r.Head()
	if c.store.Has(h.Dot()) {
		return acceptDuplicate
	}
	if _, ok := c.held[h.Dot()]; ok {
		return acceptHeld
	}
	if err := c.verify(r); err != nil {
		if errors.Is(err, trust.ErrUnknownSigner) {
			if c.hold(now, r, time.Time{}) == acceptHeld {
				return acceptHeldSigner
			}
			return acceptRefused
		}
		if errors.Is(err, trust.ErrNotCreator) {
			// Genuinely signed by its author, so its dot is covered: no
			// node waits for it, and the record never counts.
			c.store.Refuse(r)
		}
		c.stats.Rejected[rejectReason(err)]++
		return acceptRefused
	}
	if _, err := c.clock.Observe(h.HLC, now); err != nil {
		var ahead *crdt.AheadError
		if errors.As(err, &ahead) {
			// Held until local time reaches the timestamp itself, not
			// just comes within the max offset of it: merged any
			// earlier, it would drag this node's clock ahead of its
			// wall, and the node's own writes would then be held
			// elsewhere in turn.
			return c.hold(now, r, now.Add(ahead.Ahead()))
		}
	}
	ok, err := c.store.MergeVerified(r)
	switch {
	case errors.Is(err, crdt.ErrTooFarAhead):
		// Anti-entropy brings it in order.
		c.stats.Rejected["too_far_ahead"]++
		return acceptRefused
	case errors.Is(err, crdt.ErrAuthorRevoked):
		// Written by a controller after the root revoked it: dropped, but
		// its dot is covered, so it does not hold its interval open.
		c.stats.Rejected["author_revoked"]++
		return acceptDuplicate
	case err != nil:
		c.stats.Rejected[rejectReason(err)]++
		return acceptRefused
	case !ok:
		return acceptDuplicate
	}
	c.applied.add(r)
	c.stats.Applied++
	return acceptMerged
}

// SharedVerifier is implemented by verifiers that check a record object
// once and remember the verdict, as the simulator's does: it shares one
// immutable record among all simulated nodes (ARCHITECTURE.md,
// "Simulation"), so encoding its signed bytes at every node would be waste.
type SharedVerifier interface {
	crdt.Verifier
	VerifyShared(r crdt.Record) error
}

// Prechecker is a SharedVerifier that can check records' signatures
// before they reach the core, on any goroutine, concurrently, and
// without reading the store (trust.Verifier does): a driver calls
// Precheck on every core as messages arrive, before it takes the lock
// under which it steps the core, and the core's VerifyShared then has
// little left to do under that lock. Precheck must only ever make
// VerifyShared cheaper, never change its answer.
type Prechecker interface {
	SharedVerifier
	// Precheck checks what it can of recs and returns those whose
	// signature it verified.
	Precheck(recs []crdt.Record) []crdt.Record
}

func (c *Core) verify(r crdt.Record) error {
	if sv, ok := c.verifier.(SharedVerifier); ok {
		return sv.VerifyShared(r)
	}
	return crdt.Verify(r, c.verifier)
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, crdt.ErrInvalid):
		return "invalid"
	case errors.Is(err, crdt.ErrAuthorRevoked):
		return "author_revoked"
	case errors.Is(err, crdt.ErrTooManyAuthors):
		return "too_many_authors"
	case errors.Is(err, trust.ErrUnknownSigner):
		return "unknown_signer"
	case errors.Is(err, trust.ErrSignerExpired):
		return "signer_expired"
	case errors.Is(err, trust.ErrBadSigner):
		return "bad_signer"
	case errors.Is(err, trust.ErrBadRevocation):
		return "bad_revocation"
	case errors.Is(err, trust.ErrNotCreator):
		return "not_creator"
	}
	return "bad_signature"
}

type heldRecord struct {
	rec   crdt.Record
	until time.Time // dropped after this
	retry time.Time // HLC hold: not before this
}

func (c *Core) hold(now time.Time, r crdt.Record, retry time.Time) acceptResult {
	if len(c.held) >= c.cfg.MaxHeld {
		c.stats.Rejected["held_full"]++
		return acceptRefused
	}
	c.held[r.Head().Dot()] = &heldRecord{rec: r, until: now.Add(c.cfg.HeldTTL), retry: retry}
	return acceptHeld
}

// retryHeld merges held records whose reason to wait has passed: their
// HLC hold ran out, or, when signers is set, a signer record arrived. It
// drops those held longer than HeldTTL.
func (c *Core) retryHeld(now time.Time, signers bool) {
	if len(c.held) == 0 {
		return
	}
	dots := make([]crdt.Dot, 0, len(c.held))
	for d := range c.held {
		dots = append(dots, d)
	}
	// Oldest first, so an author's seqs merge in order.
	slices.SortFunc(dots, func(a, b crdt.Dot) int {
		if c := compareStrings(a.Author.Name, b.Author.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Author.Incarnation, b.Author.Incarnation); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	mergedSigner := false
	for _, d := range dots {
		h := c.held[d]
		if !now.Before(h.until) {
			delete(c.held, d)
			c.stats.Rejected["held_expired"]++
			continue
		}
		due := signers && h.retry.IsZero() || !h.retry.IsZero() && !now.Before(h.retry)
		if !due {
			continue
		}
		delete(c.held, d)
		switch c.accept(now, h.rec) {
		case acceptHeld, acceptHeldSigner:
			c.held[d].until = h.until // still waiting: the first deadline stands
		case acceptMerged:
			if _, ok := h.rec.(*crdt.SignerRecord); ok {
				mergedSigner = true
			}
		}
	}
	// A signer record held for the clock has just merged: the records
	// waiting for a signer may be its author's.
	if mergedSigner && !signers {
		c.retryHeld(now, true)
	}
}

// HeldCount is the number of records held for a signer or a future HLC.
func (c *Core) HeldCount() int { return len(c.held) }
