package gossip

import (
	"cmp"
	"slices"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// Pull on miss. A router asked to admit a certificate it has not heard of
// calls Want. The first wave asks the issuing controller and one nearby
// node at once: the issuer is authoritative, the neighbour is usually a
// millisecond away and has the record if gossip merely overtook the client.
// If neither answers with the record within WantTimeout, the second wave
// asks every other controller and a few more peers. Answers are signed
// records, so any node may answer, and records that complete the pull
// settle it whoever brought them. Only the issuer's "not found" settles it
// otherwise, and only as a proven answer (Sender) to the want id it was
// asked: ids are drawn from the core's random source, so a key holder that
// was not asked cannot guess one, and a proof binds its recipient, so an
// answer sent to one node settles nothing at another. An unproven answer
// does not count towards a wave either: made-up "not found" answers cannot
// hurry a pull to give up.

// wantPeersSecondWave caps the routers asked in the second wave.
const wantPeersSecondWave = 3

type pull struct {
	id       uint64 // random: answers must name it
	serial   crdt.Serial
	issuer   string
	wave     int
	deadline time.Time
	waiting  map[string]bool // asked in this wave, not yet answered
	asked    map[string]bool
}

// Want asks peers for the records of a certificate this node has not seen,
// or whose session it has not seen: admission needs both, and after a long
// partition a rotated certificate's push can overtake its session record,
// written long before and still queued in anti-entropy. The result comes in
// Ready.Wants. Concurrent wants for one serial collapse into one pull, and
// an authoritative "not issued" is cached for NegativeTTL.
func (c *Core) Want(now time.Time, serial crdt.Serial, issuer string) {
	if hasCert(c.store, serial) {
		c.wants = append(c.wants, WantResult{Serial: serial, Found: true})
		return
	}
	if until, ok := c.negative[serial]; ok {
		if now.Before(until) {
			c.stats.Pulls["cached"]++
			c.wants = append(c.wants, WantResult{Serial: serial, Authoritative: true})
			return
		}
		delete(c.negative, serial)
	}
	if _, ok := c.pulls[serial]; ok {
		return
	}
	p := &pull{id: c.rng.Uint64(), serial: serial, issuer: issuer, asked: make(map[string]bool)}
	c.pulls[serial] = p
	c.wave(now, p)
}

// wave sends the next wave of a pull, or resolves it as not found when no
// one is left to ask.
func (c *Core) wave(now time.Time, p *pull) {
	p.wave++
	p.waiting = make(map[string]bool)
	p.deadline = now.Add(c.cfg.WantTimeout)
	var targets []string
	switch p.wave {
	case 1:
		if m, ok := c.view.Member(p.issuer); ok && m.Role == RoleController && c.view.Alive(p.issuer) {
			targets = append(targets, p.issuer)
		}
		targets = c.nearest(p.asked, targets, 1)
	case 2:
		for _, name := range c.view.Controllers() {
			if !p.asked[name] && name != c.cfg.Name && c.view.Alive(name) && !slices.Contains(targets, name) {
				targets = append(targets, name)
			}
		}
		targets = c.nearest(p.asked, targets, wantPeersSecondWave)
	}
	if len(targets) == 0 {
		c.resolve(p, WantResult{Serial: p.serial})
		c.stats.Pulls["not_found"]++
		return
	}
	m := &Message{Type: MsgWantReq, SentAt: crdt.MillisOf(now), WantID: p.id, Serial: p.serial}
	for _, t := range targets {
		p.asked[t] = true
		p.waiting[t] = true
		c.send(t, m)
	}
}

// nearest appends up to n live members not yet asked nor in targets: this
// region's controllers, then this region's other members from a random
// starting point (so that pulls spread over the region), then controllers
// elsewhere.
func (c *Core) nearest(asked map[string]bool, targets []string, n int) []string {
	ok := func(name string) bool {
		return name != c.cfg.Name && !asked[name] && !slices.Contains(targets, name) && c.view.Alive(name)
	}
	added := 0
	take := func(name string) {
		if added < n && ok(name) {
			targets = append(targets, name)
			added++
		}
	}
	local := c.view.Region(c.cfg.Region)
	for _, name := range local {
		if m, found := c.view.Member(name); found && m.Role == RoleController {
			take(name)
		}
	}
	if len(local) > 0 {
		start := c.rng.IntN(len(local))
		for i := 0; i < len(local) && added < n; i++ {
			take(local[(start+i)%len(local)])
		}
	}
	for _, name := range c.view.Controllers() {
		take(name)
	}
	return targets
}

func (c *Core) resolve(p *pull, res WantResult) {
	delete(c.pulls, p.serial)
	c.wants = append(c.wants, res)
}

func (c *Core) tickWants(now time.Time) {
	for s, until := range c.negative {
		if !now.Before(until) {
			delete(c.negative, s)
		}
	}
	var due []*pull
	for _, p := range c.pulls {
		if !now.Before(p.deadline) {
			due = append(due, p)
		}
	}
	slices.SortFunc(due, func(a, b *pull) int { return cmp.Compare(a.id, b.id) })
	for _, p := range due {
		if p.wave >= 2 {
			c.stats.Pulls["timeout"]++
			c.resolve(p, WantResult{Serial: p.serial})
			continue
		}
		c.wave(now, p)
	}
}

// answerWant answers a pull with the certificate's records: the cert, its
// session and the issuer's signer records (so that a node that has not
// heard of the issuer can verify them), or with "not found", authoritative
// when this node is the issuing controller.
func (c *Core) answerWant(now time.Time, to string, req *Message) {
	resp := &Message{Type: MsgWantResp, SentAt: crdt.MillisOf(now), WantID: req.WantID, Serial: req.Serial}
	if cert, ok := c.store.Cert(req.Serial); ok {
		resp.Found = true
		for _, s := range c.store.Signers(cert.Issuer()) {
			resp.Records = append(resp.Records, s)
		}
		if sess, ok := c.store.Session(cert.Session); ok {
			resp.Records = append(resp.Records, sess)
		}
		resp.Records = append(resp.Records, cert)
	} else {
		resp.Authoritative = c.cfg.Role == RoleController
	}
	c.send(to, resp)
}

func (c *Core) onWantResp(now time.Time, from Sender, m *Message) {
	if len(m.Records) > 0 {
		c.ingest(now, from.Name, m.Records, nil)
	}
	p, ok := c.pulls[m.Serial]
	if !ok {
		return // late, duplicate or unsolicited
	}
	if hasCert(c.store, m.Serial) {
		// The records verified: whoever brought them, the pull is done.
		c.stats.Pulls["found"]++
		c.resolve(p, WantResult{Serial: m.Serial, Found: true})
		return
	}
	if p.id != m.WantID || !from.Proven || !p.waiting[from.Name] {
		return // not an answer from a node asked, as far as this node can tell
	}
	if mb, ok := c.view.Member(from.Name); !ok || mb.Role != from.Role {
		return // a certificate of another role under the name asked: not that node
	}
	delete(p.waiting, from.Name)
	switch {
	case m.Authoritative && !m.Found && from.Name == p.issuer && from.Role == RoleController:
		// Only the issuer's word settles it; another controller may
		// simply not have heard yet.
		c.stats.Pulls["not_found"]++
		c.negative[m.Serial] = now.Add(c.cfg.NegativeTTL)
		c.resolve(p, WantResult{Serial: m.Serial, Authoritative: true})
	case len(p.waiting) == 0:
		c.wave(now, p)
	}
}

// hasCert reports whether s holds the certificate record of serial and the
// record of its session, all that admission needs.
func hasCert(s *crdt.Store, serial crdt.Serial) bool {
	cert, ok := s.Cert(serial)
	if !ok {
		return false
	}
	_, ok = s.Session(cert.Session)
	return ok
}

// WantResult resolves a Want.
type WantResult struct {
	Serial crdt.Serial
	// Found: the certificate record and the record of its session are
	// now in the store, all that admission needs.
	Found bool
	// Authoritative: the issuer itself said it never issued the serial.
	Authoritative bool
}

// Pull returns the want id of the pull of serial in flight and the nodes it
// waits for in its current wave, sorted; ok is false if none is in flight.
func (c *Core) Pull(serial crdt.Serial) (id uint64, waiting []string, ok bool) {
	p, ok := c.pulls[serial]
	if !ok {
		return 0, nil, false
	}
	for n := range p.waiting {
		waiting = append(waiting, n)
	}
	slices.Sort(waiting)
	return p.id, waiting, true
}
