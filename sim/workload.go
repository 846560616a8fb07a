package sim

import "time"

// The workload of SPEC.md section 5. Clients live in regions chosen
// uniformly at random; each request goes to the nearest controller that is
// up and reachable from the client's region (its own region's when it has
// one, chosen at random among them), as DNS failover would. Each
// acknowledged issue or rotation makes the client connect to a router chosen
// uniformly over all regions; each acknowledged revocation makes its client
// try the revoked certificate at a router too, at a uniform random time in
// the following revokedConnectSpan. A router sees the certificate 1.5 round
// trips (client region to router region) after the connect starts.

// arrival makes the workload's next request.
func (r *run) arrival() {
	r.arrivals++
	if r.arrivals < r.nArrivals {
		r.sched.push(event{at: r.arrivalTime(r.arrivals), kind: evArrival})
	}
	w := r.top.Workload
	kind := WriteIssue
	if x := r.wlRand.Float64() * (w.Issue + w.Rotate + w.Revoke); x >= w.Issue && len(r.live) > 0 {
		kind = WriteRotate
		if x >= w.Issue+w.Rotate {
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
	ctrl := r.nearestController(region)
	if ctrl < 0 {
		r.noCtrl++
		r.tracef("request %v: no controller reachable from %s", kind, r.top.Regions[region].Name)
		return
	}
	id := EventID(len(r.writes))
	wr := &Write{ID: id, Kind: kind, Session: session, Identity: int32(session), Controller: ctrl, Requested: r.now}
	switch kind {
	case WriteIssue:
		r.sessions = append(r.sessions, sessionState{region: region, cert: -1, livePos: -1, revokeAt: -1})
		fallthrough
	case WriteRotate:
		wr.Cert = CertID(len(r.certs))
		r.certs = append(r.certs, certState{session: session, write: id, issuer: ctrl})
	case WriteRevoke:
		s := &r.sessions[session]
		wr.Cert = s.cert
		s.revokeAt = r.now
		r.removeLive(session)
	}
	r.writes = append(r.writes, writeState{w: wr, acked: -1, lastApply: -1, applied: make([]uint64, r.words)})
	r.tracef("request %v session=%d cert=%d at %s", kind, session, wr.Cert, r.cl.Nodes[ctrl].Name)
	r.ctrls[ctrl].Write(r.now, wr)
}

// nearestController returns the controller a client in region sends its
// request to, or -1 when none is up and reachable.
func (r *run) nearestController(region int) NodeID {
	var own []NodeID
	for _, c := range r.cl.RegionControllers[region] {
		if r.alive[c] {
			own = append(own, c)
		}
	}
	if len(own) > 0 {
		return own[r.wlRand.IntN(len(own))]
	}
	best, bestDelay := NodeID(-1), never
	for _, c := range r.cl.Controllers {
		cr := r.cl.Nodes[c].Region
		if !r.alive[c] || r.net.regionCutNow(region, cr) {
			continue
		}
		if d := r.cl.RegionDelay(region, cr); d < bestDelay {
			best, bestDelay = c, d
		}
	}
	return best
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
		if s.revokeAt < 0 && s.livePos < 0 {
			s.livePos = int32(len(r.live))
			r.live = append(r.live, w.Session)
		}
		r.scheduleConnect(w, w.Cert, -1, 0)
	case WriteRevoke:
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
	cert := r.certs[c.cert]
	r.tracef("connect %d cert=%d at %s", i, c.cert, r.cl.Nodes[c.router].Name)
	r.rtrs[c.router].Admit(r.now, Admission{
		Connect: int32(i), Cert: c.cert, Session: cert.session, Issuer: cert.issuer, CertWrite: cert.write,
	})
}

// converged reports whether the drain may stop: the workload is done, every
// connect answered, every write acknowledged and applied at every node, and
// every live node's digest equal.
func (r *run) converged() bool {
	if r.arrivals < r.nArrivals || r.pending > 0 ||
		r.totalApplied < int64(len(r.writes))*int64(len(r.nodes)) {
		return false
	}
	for i := range r.writes {
		if r.writes[i].acked < 0 {
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
