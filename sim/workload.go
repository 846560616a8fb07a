package sim

import (
	"slices"
	"time"
)

// The workload (docs/meshsim-model.md, "The workload"). Clients live in regions chosen
// uniformly at random; each request goes to the nearest controller that is
// up and reachable from the client's region (its own region's when it has
// one, chosen at random among them), as DNS failover would. Each
// acknowledged issue or rotation makes the client connect to a router chosen
// uniformly over all regions; each acknowledged revocation makes its client
// try the revoked certificate at a router too, at a uniform random time in
// the following revokedConnectSpan. A router sees the certificate 1.5 round
// trips (client region to router region) after the connect starts.
//
// A controller may refuse a request it reaches (Env.Refused), as one whose
// clock is off does with 503 clock_skew. The refusal travels back to the
// client, which sends the request to the nearest reachable controller it
// has not tried yet; once every reachable controller has refused, it waits
// refusalBackoff and starts over, and gives up (the write is abandoned and
// counts in writes_unavailable) when that would take it past
// unavailableAfter from its request. An abandoned write never happened: it
// counts in neither undelivered nor convergence.

// refusalBackoff is how long a client whose every reachable controller
// refused its request waits before it tries them again.
const refusalBackoff = time.Second

// arrival makes the workload's next request.
func (r *run) arrival() {
	r.arrivals++
	if r.arrivals < r.nArrivals {
		r.sched.push(event{at: r.arrivalTime(r.arrivals), kind: evArrival})
	}
	w := r.top.Workload
	kind := WriteIssue
	if x := r.wlRand.Float64() * (w.Issue + w.Rotate + w.Revoke + w.Policy); x >= w.Issue && len(r.live) > 0 {
		kind = WriteRotate
		if x >= w.Issue+w.Rotate+w.Revoke {
			kind = WritePolicy
		} else if x >= w.Issue+w.Rotate {
			kind = WriteRevoke
		}
	}
	var (
		session SessionID
		region  int
	)
	if kind == WriteIssue {
		session = SessionID(len(r.sessions))
		region = r.wlRand.IntN(r.cl.NumRegions())
	} else {
		session = r.live[r.wlRand.IntN(len(r.live))]
		region = r.sessions[session].region
	}
	ctrl := r.nearestController(region, nil)
	if ctrl < 0 {
		r.noCtrl++
		r.tracef("request %v: no controller reachable from %s", kind, r.top.Regions[region].Name)
		return
	}
	id := EventID(len(r.writes))
	wr := &Write{ID: id, Kind: kind, Session: session, Identity: int32(session), Controller: ctrl, Requested: r.now}
	if kind != WriteIssue {
		wr.Group = r.sessions[session].group
	}
	switch kind {
	case WriteIssue:
		wr.Group = r.policy.join(session)
		r.sessions = append(r.sessions, sessionState{region: region, cert: -1, livePos: -1, revokeAt: -1, group: wr.Group})
		fallthrough
	case WriteRotate:
		wr.Cert = CertID(len(r.certs))
		r.certs = append(r.certs, certState{session: session, write: id, issuer: ctrl})
	case WriteRevoke:
		s := &r.sessions[session]
		wr.Cert = s.cert
		s.revokeAt = r.now
		r.removeLive(session)
	case WritePolicy:
		wr.Cert = r.sessions[session].cert
		r.removeGroup(wr.Group, id)
	}
	r.writes = append(r.writes, writeState{w: wr, acked: -1, lastApply: -1, applied: make([]uint64, r.words)})
	r.tracef("request %v session=%d cert=%d at %s", kind, session, wr.Cert, r.cl.Nodes[ctrl].Name)
	r.ctrls[ctrl].Write(r.now, wr)
}

// nearestController returns the controller a client in region sends its
// request to, or -1 when none is up and reachable; it skips those in tried.
func (r *run) nearestController(region int, tried []NodeID) NodeID {
	var own []NodeID
	for _, c := range r.cl.RegionControllers[region] {
		if r.alive[c] && !slices.Contains(tried, c) {
			own = append(own, c)
		}
	}
	if len(own) > 0 {
		return own[r.wlRand.IntN(len(own))]
	}
	best, bestDelay := NodeID(-1), never
	for _, c := range r.cl.Controllers {
		cr := r.cl.Nodes[c].Region
		if !r.alive[c] || r.net.regionCutNow(region, cr) || slices.Contains(tried, c) {
			continue
		}
		if d := r.cl.RegionDelay(region, cr); d < bestDelay {
			best, bestDelay = c, d
		}
	}
	return best
}

// refused implements Env.Refused: the refusal reaches the client, which
// fails over.
func (r *run) refused(ctrl NodeID, id EventID) {
	if id < 0 || int(id) >= len(r.writes) {
		return
	}
	ws := &r.writes[id]
	if ws.acked >= 0 || ws.abandoned || ws.w.Controller != ctrl {
		return
	}
	r.stat.refused++
	r.refusedBy[ctrl]++
	ws.tried = append(ws.tried, ctrl)
	client := r.clientRegion(ws.w)
	r.tracef("refused %v write=%d at %s", ws.w.Kind, id, r.cl.Nodes[ctrl].Name)
	back := r.cl.RegionDelay(r.cl.Nodes[ctrl].Region, client)
	r.sched.push(event{at: r.now + back, kind: evCall, data: func() { r.failover(id) }})
}

// clientRegion returns the region of the client that made w.
func (r *run) clientRegion(w *Write) int { return r.sessions[w.Session].region }

// failover sends a refused request on to the next controller, from the
// client, now.
func (r *run) failover(id EventID) {
	ws := &r.writes[id]
	client := r.clientRegion(ws.w)
	next := r.nearestController(client, ws.tried)
	if next < 0 {
		if r.now+refusalBackoff-ws.w.Requested > unavailableAfter {
			r.abandon(ws)
			return
		}
		ws.tried = ws.tried[:0]
		r.sched.push(event{at: r.now + refusalBackoff, kind: evCall, data: func() { r.failover(id) }})
		return
	}
	at := r.now + r.cl.RegionDelay(client, r.cl.Nodes[next].Region)
	r.sched.push(event{at: at, kind: evCall, data: func() {
		ws := &r.writes[id] // r.writes may have grown since
		if !r.alive[next] || r.net.regionCutNow(client, r.cl.Nodes[next].Region) {
			ws.tried = append(ws.tried, next) // no answer: the client tries the next one
			r.failover(id)
			return
		}
		w := *ws.w // the refusing controller may not keep it, but a copy costs nothing
		w.Controller = next
		ws.w = &w
		if w.Kind == WriteIssue || w.Kind == WriteRotate {
			r.certs[w.Cert].issuer = next
		}
		r.tracef("request %v write=%d retried at %s", w.Kind, id, r.cl.Nodes[next].Name)
		r.ctrls[next].Write(r.now, &w)
	}})
}

// abandon gives up a write that no controller accepted: the client's
// request failed, and a revocation's session is live again.
func (r *run) abandon(ws *writeState) {
	ws.abandoned = true
	r.abandoned++
	r.tracef("request %v write=%d abandoned: refused everywhere", ws.w.Kind, ws.w.ID)
	if ws.w.Kind == WritePolicy {
		r.restoreGroup(ws.w.Group, ws.w.ID, ws.w.Requested)
		return
	}
	if ws.w.Kind != WriteRevoke {
		return
	}
	s := &r.sessions[ws.w.Session]
	s.revokeAt = -1
	if s.cert >= 0 && s.livePos < 0 {
		s.livePos = int32(len(r.live))
		r.live = append(r.live, ws.w.Session)
	}
}

func (r *run) removeLive(s SessionID) {
	ss := &r.sessions[s]
	if ss.livePos < 0 {
		return
	}
	last := r.live[len(r.live)-1]
	r.live[ss.livePos] = last
	r.sessions[last].livePos = ss.livePos
	r.live = r.live[:len(r.live)-1]
	ss.livePos = -1
}

// onAck hands the client its certificate (or confirms its revocation) and
// schedules its connect.
func (r *run) onAck(w *Write) {
	s := &r.sessions[w.Session]
	switch w.Kind {
	case WriteIssue, WriteRotate:
		if w.Cert > s.cert {
			s.cert = w.Cert
		}
		if s.revokeAt < 0 && s.deniedAt == 0 && s.livePos < 0 {
			s.livePos = int32(len(r.live))
			r.live = append(r.live, w.Session)
		}
		r.scheduleConnect(w, w.Cert, -1, 0)
	case WriteRevoke, WritePolicy:
		if w.Cert >= 0 {
			extra := time.Duration(r.wlRand.Int64N(int64(revokedConnectSpan)))
			r.scheduleConnect(w, w.Cert, w.ID, extra)
		}
	}
}

func (r *run) scheduleConnect(w *Write, cert CertID, revoke EventID, extra time.Duration) {
	if len(r.cl.Routers) == 0 {
		return
	}
	router := r.cl.Routers[r.wlRand.IntN(len(r.cl.Routers))]
	client := r.sessions[w.Session].region
	rr := r.cl.Nodes[router].Region
	handshake := time.Duration(handshakeRTTs * float64(2*r.cl.RegionDelay(client, rr)))
	at := r.now + r.cl.RegionDelay(r.cl.Nodes[w.Controller].Region, client) +
		r.top.Workload.ConnectDelay + extra + handshake
	r.connects = append(r.connects, connectState{router: router, cert: cert, region: client, revoke: revoke, query: at})
	r.pending++
	r.sched.push(event{at: at, kind: evConnect, arg: int64(len(r.connects) - 1)})
}

// connect asks the router whether it admits a connect's certificate.
func (r *run) connect(i int) {
	c := &r.connects[i]
	if !r.alive[c.router] || r.net.regionCutNow(c.region, r.cl.Nodes[c.router].Region) {
		r.tracef("connect %d cert=%d to %s: no handshake (router down or cut off)", i, c.cert, r.cl.Nodes[c.router].Name)
		r.pending--
		return
	}
	c.asked = true
	r.stat.connects++
	if c.revoke >= 0 {
		if r.writes[c.revoke].w.Kind == WritePolicy {
			r.stat.deniedConnects++
		} else {
			r.stat.revokedConnects++
		}
	}
	cert := r.certs[c.cert]
	r.tracef("connect %d cert=%d at %s", i, c.cert, r.cl.Nodes[c.router].Name)
	r.rtrs[c.router].Admit(r.now, Admission{
		Connect: int32(i), Cert: c.cert, Session: cert.session, Issuer: cert.issuer, CertWrite: cert.write,
		Group: r.sessions[cert.session].group,
	})
}

// converged reports whether the drain may stop: the workload is done, every
// connect answered, every write acknowledged and applied at every node, and
// every live node's digest equal.
func (r *run) converged() bool {
	if r.arrivals < r.nArrivals || r.pending > 0 ||
		r.totalApplied < int64(len(r.writes)-r.abandoned)*int64(len(r.nodes)) {
		return false
	}
	for i := range r.writes {
		if ws := &r.writes[i]; ws.acked < 0 && !ws.abandoned {
			return false
		}
	}
	return r.digestsAgree()
}

// digestsAgree reports whether every live node holds the same digest.
func (r *run) digestsAgree() bool {
	first, have := uint64(0), false
	for i, node := range r.nodes {
		if !r.alive[i] {
			continue
		}
		d := node.Digest()
		if !have {
			first, have = d, true
		} else if d != first {
			return false
		}
	}
	return true
}
