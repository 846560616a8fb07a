package issuer

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/strictjson"
	"github.com/certmesh/certmesh/issuer/clockgate"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
)

// apiError is a handler's failure, answered as an api.ErrorBody.
type apiError struct {
	status int
	code   api.Code
	msg    string
}

func fail(status int, code api.Code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) *apiError

func (c *Controller) apiHandler() http.Handler {
	mux := http.NewServeMux()
	c.routes = nil
	route := func(path string, methods map[string]handlerFunc) {
		for m := range methods {
			c.routes = append(c.routes, m+" "+path)
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			st := &statusWriter{ResponseWriter: w}
			defer func() { c.met.request(path, st.status()) }()
			if !c.limiter.allow(clientIP(r), c.now()) {
				writeError(st, fail(http.StatusTooManyRequests, api.CodeRateLimited, "more than %v requests per second from this address", c.cfg.API.RateLimit))
				return
			}
			h := methods[r.Method]
			if h == nil {
				allow := make([]string, 0, len(methods))
				for m := range methods {
					allow = append(allow, m)
				}
				sort.Strings(allow)
				st.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(st, fail(http.StatusMethodNotAllowed, api.CodeMethod, "method %s is not allowed on %s", r.Method, path))
				return
			}
			if r.ContentLength > api.MaxBodyBytes {
				writeError(st, fail(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body is larger than %d bytes", api.MaxBodyBytes))
				return
			}
			r.Body = http.MaxBytesReader(st, r.Body, api.MaxBodyBytes)
			if e := h(st, r); e != nil {
				writeError(st, e)
			}
		})
	}
	route(api.PathSessions, map[string]handlerFunc{http.MethodPost: c.login, http.MethodGet: c.listSessions})
	route(api.PathCurrentSession, map[string]handlerFunc{http.MethodDelete: c.logout, http.MethodGet: c.currentSession})
	route(api.PathCertificates, map[string]handlerFunc{http.MethodPost: c.rotate})
	route(api.PathSessionToken, map[string]handlerFunc{http.MethodPost: c.refreshToken})
	route(api.PathRevocations, map[string]handlerFunc{http.MethodPost: c.revoke})
	route(api.PathStatus, map[string]handlerFunc{http.MethodGet: c.adminStatus})
	c.accessRoutes(route)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fail(http.StatusNotFound, api.CodeNotFound, "no such route %s", r.URL.Path))
	})
	return mux
}

// Routes lists the routes of the HTTPS API as "METHOD /path", sorted: what
// the reference (docs/reference/http-api.md) is checked against.
func (c *Controller) Routes() []string {
	r := slices.Clone(c.routes)
	slices.Sort(r)
	return slices.Compact(r)
}

func (c *Controller) monitorHandler() http.Handler {
	return api.Operator{
		Healthy: func() error {
			c.w.mu.Lock()
			failed := c.w.failed
			c.w.mu.Unlock()
			if failed != nil {
				return fmt.Errorf("durable store failed: %w", failed)
			}
			return nil
		},
		Ready:   c.Readiness,
		Metrics: c.WriteMetrics,
		Status:  func() any { return c.Status() },
	}.Handler()
}

// WriteMetrics writes the controller's metrics, the mesh's and the
// process's in Prometheus text format.
func (c *Controller) WriteMetrics(w io.Writer) {
	c.met.writeMetrics(w)
	if p, ok := c.mesh.(interface{ WritePrometheus(io.Writer) }); ok {
		p.WritePrometheus(w)
	}
	for _, f := range c.opts.ExtraMetrics {
		f(w)
	}
	api.WriteMetrics(w, api.ProcessMetrics, writeProcessMetrics)
}

// writeProcessMetrics writes the Go runtime's and the process's metrics,
// open file descriptors included.
func writeProcessMetrics(w io.Writer) {
	metrics.WriteProcessMetrics(w)
	metrics.WriteFDMetrics(w)
}

// Status is what GET /v1/status answers.
func (c *Controller) Status() api.Status {
	st := api.Status{
		Node:          c.cfg.Node.Name,
		Role:          "controller",
		Region:        c.cfg.Node.Region,
		Members:       []api.MemberStatus{},
		VersionVector: map[string]uint64{},
		Records:       map[string]int{},
	}
	st.Issuers = issuerStatus(c.issuerHealth())
	if c.mesh == nil {
		return st
	}
	if ms := c.mesh.Members(); ms != nil {
		st.Members = ms
	}
	c.mesh.View(func(s *crdt.Store) {
		for a, seq := range s.VersionVector() {
			st.VersionVector[a.String()] = seq
		}
		for k, n := range s.Counts() {
			st.Records[k.String()] = n
		}
		st.Digest = fmt.Sprintf("%016x", s.Digest())
	})
	return st
}

func issuerStatus(hs []auth.Health) []api.IssuerStatus {
	var out []api.IssuerStatus
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, h := range hs {
		out = append(out, api.IssuerStatus{
			Name: h.Name, Issuer: h.Issuer, Kind: h.Kind, State: h.State, Discovered: h.Discovered, Keys: h.Keys,
			LastKeyRefresh: stamp(h.LastKeyRefresh), LastError: h.LastError, LastErrorAt: stamp(h.LastErrorAt),
		})
	}
	return out
}

// statusWriter remembers the status code, for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a write error means the client left
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, api.ErrorBody{Error: e.msg, Code: e.code})
}

// decodeJSON reads the body into v: exactly one JSON value, nothing but
// whitespace after it (strictjson.Decode), unknown fields ignored.
func decodeJSON(r *http.Request, v any) *apiError {
	err := strictjson.Decode(r.Body, v)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return fail(http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "request body is larger than %d bytes", api.MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return fail(http.StatusBadRequest, api.CodeBadRequest, "request body is empty; want a JSON object")
	case errors.Is(err, strictjson.ErrTrailingData):
		return fail(http.StatusBadRequest, api.CodeBadRequest, "request body holds more than one JSON value; want one JSON object")
	default:
		return fail(http.StatusBadRequest, api.CodeBadRequest, "request body is not the expected JSON: %v", err)
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// checkClock refuses writes while this node's clock cannot be trusted to
// stamp them (clockgate.Check, which the simulator applies too).
func (c *Controller) checkClock() *apiError {
	off, ok := c.mesh.ClockOffset()
	lead := time.Duration(c.mesh.Now().Millis()-crdt.MillisOf(c.now())) * time.Millisecond
	switch clockgate.Check(clockgate.State{
		Offset: off, HaveOffset: ok, SinceStart: c.now().Sub(c.startedAt),
		LivePeers: func() bool { return c.livePeers() > 0 },
		Lead:      lead, MaxOffset: c.opts.MaxOffset,
	}) {
	case clockgate.NoSample:
		return fail(http.StatusServiceUnavailable, api.CodeClockSkew, "this controller has not heard from any of its %d live peers yet, so it cannot tell whether its clock agrees with theirs; it refuses writes until it has (normally within a round trip of joining), for at most %v after it starts", c.livePeers(), clockgate.FirstSampleWait)
	case clockgate.Skewed:
		if off < 0 {
			off = -off
		}
		return fail(http.StatusServiceUnavailable, api.CodeClockSkew, "this controller's clock is %v off from the mesh (limit %v); it refuses writes until it is back", off.Round(time.Millisecond), c.opts.MaxOffset/2)
	case clockgate.WentBack:
		// A clock stepped back leaves the hybrid clock ahead of wall
		// time (it never goes back).
		return fail(http.StatusServiceUnavailable, api.CodeClockSkew, "this controller's clock went back: its hybrid clock is %v ahead of its wall clock (limit %v), so peers would hold what it writes; it refuses writes until wall time catches up", lead.Round(time.Millisecond), c.opts.MaxOffset)
	}
	return nil
}

// livePeers counts the members other than this node that membership sees
// alive. Only called before the first clock sample: it lists every member.
func (c *Controller) livePeers() int {
	n := 0
	for _, m := range c.mesh.Members() {
		if m.Name != c.cfg.Node.Name && m.State == "alive" {
			n++
		}
	}
	return n
}

// checkRevoked refuses to issue once the root revoked this controller
// (pki revoke-controller): every node would refuse what it signs.
func (c *Controller) checkRevoked() *apiError {
	revoked := false
	c.mesh.View(func(s *crdt.Store) { _, revoked = s.SignerRevoked(c.cfg.Node.Name) })
	if revoked {
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "this controller's signing authority was revoked by the root; retry at another controller")
	}
	return nil
}

func writeFailed(err error) *apiError {
	switch {
	case errors.Is(err, errClosed):
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "the controller is shutting down; retry at another")
	case errors.Is(err, errStorage):
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "the controller's durable store failed; retry at another controller")
	case errors.Is(err, crdt.ErrAuthorRevoked):
		// The root revoked this controller (pki revoke-controller): every
		// node refuses what it signs from now on.
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "this controller's signing authority was revoked by the root; retry at another controller")
	}
	return fail(http.StatusInternalServerError, api.CodeInternal, "the write failed: %v", err)
}

// POST /v1/sessions: login.
func (c *Controller) login(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.LoginRequest
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	if req.Token == "" || req.CSR == "" {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "token and csr are required")
	}
	if e := c.checkWrite(); e != nil {
		return e
	}
	id, e := c.verifyToken(r, req.Token, "login")
	if e != nil {
		return e
	}
	pub, err := pki.CheckCSR([]byte(req.CSR))
	if err != nil {
		return fail(http.StatusBadRequest, api.CodeCSRInvalid, "%v", err)
	}
	now := c.now()
	limit := now.Add(c.cfg.Session.MaxLifetime)
	expires := limit
	if c.cfg.Session.BindToToken {
		if left := id.Expiry.Sub(now); left < minBoundSession {
			return fail(http.StatusUnauthorized, api.CodeTokenExpired, "the token expires at %s, in less than %v; with session.bind_to_token a session ends with its token: log in with a fresh one",
				id.Expiry.UTC().Format(time.RFC3339), minBoundSession)
		}
		if id.Expiry.Before(limit) {
			expires = id.Expiry
		}
	}
	k := c.keys.Load()
	// The id names this controller as the session's creator: no other
	// controller's record for it counts (pki.CreatedBy).
	raw, err := pki.NewSessionID(c.author.Name, nil)
	if err != nil {
		return fail(http.StatusInternalServerError, api.CodeInternal, "no randomness: %v", err)
	}
	sid := crdt.SessionID(raw)
	// A bound session's certificate may outlive its token: the session
	// record's expiry, which a fresh token extends, ends it (Store.Live).
	leaf, cr, e := c.issue(k, pub, id.ID, sid, now, limit)
	if e != nil {
		return e
	}
	sess := &crdt.SessionRecord{
		ID:       sid,
		Identity: id.ID,
		Method:   method(id),
		Created:  crdt.MillisOf(now),
		Expires:  crdt.MillisOf(expires),
		Roles:    c.claimedRoles(id),
	}
	if err := c.w.write([]crdt.Record{sess, cr}, nil); err != nil {
		return writeFailed(err)
	}
	c.met.issued.Inc()
	c.log.Info("audit", "op", "login", "remote", clientIP(r), "identity", id.ID, "method", sess.Method,
		"session", sid.String(), "serial", cr.Serial.String(), "dots", dots(sess, cr), "hlc", cr.HLC.String())
	writeJSON(w, http.StatusCreated, c.sessionResponse(k, leaf, cr, sess.Expires))
	return nil
}

// minBoundSession is the least time a token must have left to open a
// session bound to it (session.bind_to_token): one about to expire would
// open a session that ends before the client can use it.
const minBoundSession = 5 * time.Second

// verifyToken verifies a login token, counting and logging a refusal.
func (c *Controller) verifyToken(r *http.Request, token, op string) (auth.Identity, *apiError) {
	id, err := c.tokens.Load().v.Verify(r.Context(), token)
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			ae = &auth.Error{Code: auth.CodeTokenInvalid, Msg: "token is invalid", Err: err}
		}
		c.met.authFailure(string(ae.Code)).Inc()
		c.log.Info(op+" refused", "remote", clientIP(r), "code", ae.Code, "err", err)
		return auth.Identity{}, fail(ae.Code.HTTPStatus(), ae.Code, "%s", ae.Msg)
	}
	return id, nil
}

// issue signs a client certificate for pub, valid until the earlier of
// certs.ttl from now and the session's end, and its record.
func (c *Controller) issue(k *keys, pub *ecdsa.PublicKey, identity string, sid crdt.SessionID, now, sessionEnd time.Time) (*x509.Certificate, *crdt.CertRecord, *apiError) {
	ttl := min(c.cfg.Certs.TTL, sessionEnd.Sub(now))
	if ttl < time.Second {
		return nil, nil, fail(http.StatusForbidden, api.CodeSessionExpired, "the session ends in %v; log in again", sessionEnd.Sub(now).Round(time.Second))
	}
	leaf, err := pki.IssueClient(k.inter, pub, identity, sid.String(), ttl, now, nil)
	if err != nil {
		return nil, nil, fail(http.StatusInternalServerError, api.CodeInternal, "issue certificate: %v", err)
	}
	serial, err := pki.SerialOf(leaf)
	if err != nil {
		return nil, nil, fail(http.StatusInternalServerError, api.CodeInternal, "issue certificate: %v", err)
	}
	return leaf, &crdt.CertRecord{
		Serial:      crdt.Serial(serial),
		Session:     sid,
		Identity:    identity,
		Fingerprint: sha256.Sum256(leaf.Raw),
		NotBefore:   crdt.MillisOf(leaf.NotBefore),
		NotAfter:    crdt.MillisOf(leaf.NotAfter),
	}, nil
}

func (c *Controller) sessionResponse(k *keys, leaf *x509.Certificate, cr *crdt.CertRecord, sessionExpires crdt.Millis) api.SessionResponse {
	return api.SessionResponse{
		SessionID:        cr.Session.String(),
		Identity:         cr.Identity,
		Serial:           cr.Serial.String(),
		Certificate:      string(pki.EncodeCertsPEM(leaf)) + string(k.interPEM),
		CA:               string(k.rootPEM),
		ExpiresAt:        leaf.NotAfter.UTC().Format(time.RFC3339),
		SessionExpiresAt: sessionExpires.Time().Format(time.RFC3339),
	}
}

func method(id auth.Identity) string {
	m := id.Method
	if m == "oidc" {
		m = "oidc:" + id.Issuer
	}
	if len(m) > crdt.MaxTextLen {
		m = m[:crdt.MaxTextLen]
	}
	return m
}

func dots(recs ...crdt.Record) string {
	if len(recs) == 0 {
		return ""
	}
	first, last := recs[0].Head(), recs[len(recs)-1].Head()
	if first.Seq == last.Seq {
		return fmt.Sprintf("%v:%d", first.Author, first.Seq)
	}
	return fmt.Sprintf("%v:%d-%d", first.Author, first.Seq, last.Seq)
}

// sessionCert authenticates the client of an mTLS session route: its leaf
// must verify against the root through a controller intermediate (sent by
// the client or known from a signer record) and carry a session SPIFFE ID.
func (c *Controller) sessionCert(r *http.Request) (crdt.CertFacts, *apiError) {
	var f crdt.CertFacts
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return f, fail(http.StatusUnauthorized, api.CodeForbidden, "a session certificate is required (mTLS)")
	}
	k := c.keys.Load()
	peer := r.TLS.PeerCertificates
	chains, err := peer[0].Verify(x509.VerifyOptions{
		Roots:         k.roots,
		Intermediates: c.inters.with(peer[1:]),
		CurrentTime:   c.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return f, fail(http.StatusUnauthorized, api.CodeForbidden, "client certificate does not verify: %v", err)
	}
	td := c.cfg.PKI.TrustDomain
	for _, chain := range chains {
		issuer, err := pki.ControllerOf(chain, td)
		if err != nil {
			continue
		}
		id, err := pki.IDOf(chain[0])
		if err != nil || id.Kind != pki.KindIdentity || id.TrustDomain != td {
			return f, fail(http.StatusForbidden, api.CodeForbidden, "client certificate is not a session certificate of trust domain %s", td)
		}
		sid, err := crdt.ParseSessionID(id.SessionID)
		if err != nil {
			return f, fail(http.StatusForbidden, api.CodeForbidden, "client certificate names a malformed session: %v", err)
		}
		serial, err := pki.SerialOf(chain[0])
		if err != nil {
			return f, fail(http.StatusForbidden, api.CodeForbidden, "client certificate serial: %v", err)
		}
		return crdt.CertFacts{
			Serial:    crdt.Serial(serial),
			Session:   sid,
			Identity:  id.Name,
			Issuer:    issuer,
			NotBefore: crdt.MillisOf(chain[0].NotBefore),
			NotAfter:  crdt.MillisOf(chain[0].NotAfter),
		}, nil
	}
	return f, fail(http.StatusForbidden, api.CodeForbidden, "client certificate was not issued by a controller")
}

// sessionBody authenticates the client of an mTLS session route
// (sessionCert) and reads the request body into v.
func (c *Controller) sessionBody(r *http.Request, v any) (crdt.CertFacts, *apiError) {
	f, e := c.sessionCert(r)
	if e != nil {
		return f, e
	}
	return f, decodeJSON(r, v)
}

// checkWrite refuses a write that this controller may not make now: its
// clock cannot stamp it (checkClock) or the root revoked it (checkRevoked).
func (c *Controller) checkWrite() *apiError {
	if e := c.checkClock(); e != nil {
		return e
	}
	return c.checkRevoked()
}

// sessionOf reads, in one view of the store, the verdict on f at now (for
// a new connection with admit, Store.Admission in verified mode; else
// Store.Live), the record that created its session and the session's
// current end.
func (c *Controller) sessionOf(f crdt.CertFacts, now time.Time, admit bool) (v crdt.Verdict, sess *crdt.SessionRecord, end crdt.Millis) {
	c.mesh.View(func(s *crdt.Store) {
		if admit {
			v = s.Admission(f, crdt.MillisOf(now), false)
		} else {
			v = s.Live(f, crdt.MillisOf(now))
		}
		sess, _ = s.Session(f.Session)
		end, _ = s.SessionExpires(f.Session)
	})
	return v, sess, end
}

// admin authenticates an admin: a ClientAuth leaf issued directly by the
// root with an admin URI SAN (pki.AdminOf). It returns the admin's name.
func (c *Controller) admin(r *http.Request) (string, *apiError) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", fail(http.StatusUnauthorized, api.CodeForbidden, "the admin certificate is required (mTLS)")
	}
	k := c.keys.Load()
	chains, err := r.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:       k.roots,
		CurrentTime: c.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", fail(http.StatusForbidden, api.CodeForbidden, "client certificate is not an admin certificate: %v", err)
	}
	for _, chain := range chains {
		if name, err := pki.AdminOf(chain, c.cfg.PKI.TrustDomain); err == nil {
			return name, nil
		}
	}
	return "", fail(http.StatusForbidden, api.CodeForbidden, "client certificate is not an admin certificate of trust domain %s", c.cfg.PKI.TrustDomain)
}

// POST /v1/sessions/current/certificates: rotation.
func (c *Controller) rotate(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.RotationRequest
	f, e := c.sessionBody(r, &req)
	if e != nil {
		return e
	}
	if req.CSR == "" {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "csr is required")
	}
	if e := c.checkWrite(); e != nil {
		return e
	}
	now := c.now()
	verdict, sess, end := c.sessionOf(f, now, true)
	if verdict != crdt.Admit {
		return sessionRefusal(verdict, f.Serial)
	}
	if e := knownSession(sess, f); e != nil {
		return e
	}
	pub, err := pki.CheckCSR([]byte(req.CSR))
	if err != nil {
		return fail(http.StatusBadRequest, api.CodeCSRInvalid, "%v", err)
	}
	k := c.keys.Load()
	certEnd := end.Time()
	if c.cfg.Session.BindToToken {
		// As at login: a fresh token may extend the session up to its
		// limit, and the certificate need not end with the current token.
		if l := sess.Created.Time().Add(c.cfg.Session.MaxLifetime); l.After(certEnd) {
			certEnd = l
		}
	}
	leaf, cr, e := c.issue(k, pub, f.Identity, f.Session, now, certEnd)
	if e != nil {
		return e
	}
	cr.Supersedes = f.Serial
	cr.SupersedeAt = crdt.MillisOf(now.Add(c.cfg.Certs.RotationGrace))
	if err := c.w.write([]crdt.Record{cr}, nil); err != nil {
		return writeFailed(err)
	}
	c.met.issued.Inc()
	c.log.Info("audit", "op", "rotate", "remote", clientIP(r), "identity", f.Identity, "session", f.Session.String(),
		"serial", cr.Serial.String(), "supersedes", f.Serial.String(), "dots", dots(cr), "hlc", cr.HLC.String())
	writeJSON(w, http.StatusCreated, c.sessionResponse(k, leaf, cr, end))
	return nil
}

// DELETE /v1/sessions/current: logout.
func (c *Controller) logout(w http.ResponseWriter, r *http.Request) *apiError {
	f, e := c.sessionCert(r)
	if e != nil {
		return e
	}
	if e := c.checkClock(); e != nil {
		return e
	}
	now := c.now()
	var verdict crdt.Verdict
	c.mesh.View(func(s *crdt.Store) { verdict = s.Live(f, crdt.MillisOf(now)) })
	if verdict == crdt.SessionRevoked {
		w.WriteHeader(http.StatusNoContent) // already logged out
		return nil
	}
	rec := &crdt.RevocationRecord{
		Target:  crdt.RevokeSession,
		Session: f.Session,
		Reason:  "logout",
		At:      crdt.MillisOf(now),
		Until:   crdt.MillisOf(now.Add(c.cfg.Session.MaxLifetime)),
	}
	if err := c.w.write([]crdt.Record{rec}, nil); err != nil {
		return writeFailed(err)
	}
	c.log.Info("audit", "op", "logout", "remote", clientIP(r), "identity", f.Identity, "session", f.Session.String(),
		"serial", f.Serial.String(), "dots", dots(rec), "hlc", rec.HLC.String())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// POST /v1/revocations: admin revocation.
func (c *Controller) revoke(w http.ResponseWriter, r *http.Request) *apiError {
	name, e := c.admin(r)
	if e != nil {
		return e
	}
	var req api.RevocationRequest
	if e := decodeJSON(r, &req); e != nil {
		return e
	}
	n := 0
	for _, set := range []bool{req.SessionID != "", req.Identity != "", req.Serial != "", len(req.RootSigned) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "give exactly one of session_id, identity, serial and root_signed")
	}
	if e := c.checkClock(); e != nil {
		return e
	}
	reason := "admin " + name
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	if len(reason) > crdt.MaxTextLen {
		reason = reason[:crdt.MaxTextLen]
	}
	for !utf8.ValidString(reason) {
		reason = reason[:len(reason)-1]
	}
	now := c.now()
	at := crdt.MillisOf(now)
	// A floor only: every node keeps the revocation until what it covers
	// can no longer be used, whatever this controller's session lifetime
	// (crdt.Retention).
	until := crdt.MillisOf(now.Add(c.cfg.Session.MaxLifetime))
	var (
		rec       crdt.Record
		kind, key string
	)
	switch {
	case req.SessionID != "":
		id, err := crdt.ParseSessionID(strings.ToLower(req.SessionID))
		if err != nil || id.IsZero() {
			return fail(http.StatusBadRequest, api.CodeBadRequest, "session_id %.80q is not 32 hex digits", req.SessionID)
		}
		rec = &crdt.RevocationRecord{Target: crdt.RevokeSession, Session: id, Reason: reason, At: at, Until: until}
		kind, key = "session", id.String()
	case req.Serial != "":
		s, err := crdt.ParseSerial(req.Serial)
		if err != nil || s.IsZero() {
			return fail(http.StatusBadRequest, api.CodeBadRequest, "serial %.80q is not 1 to 32 hex digits", req.Serial)
		}
		rec = &crdt.RevocationRecord{Target: crdt.RevokeSerial, Serial: s, Reason: reason, At: at, Until: until}
		kind, key = "serial", s.String()
	case req.Identity != "":
		if len(req.Identity) > crdt.MaxIdentityLen || !utf8.ValidString(req.Identity) {
			return fail(http.StatusBadRequest, api.CodeBadRequest, "identity is not UTF-8 of at most %d bytes", crdt.MaxIdentityLen)
		}
		rec = &crdt.IdentityRevocationRecord{Identity: req.Identity, RevokedBefore: at, Reason: reason, Until: until}
		kind, key = "identity", req.Identity
	default:
		rev, err := trust.CheckRevocation(c.keys.Load().root, c.cfg.PKI.TrustDomain, req.RootSigned)
		var other *trust.DomainError
		switch {
		case errors.As(err, &other):
			return fail(http.StatusBadRequest, api.CodeBadRequest, "root_signed revokes a controller of trust domain %q, not %q", other.Got, other.Want)
		case err != nil:
			return fail(http.StatusBadRequest, api.CodeBadRequest, "root_signed: %v", err)
		}
		// The cut: what this controller holds of the revoked one now.
		// Everything its key signs beyond it is refused everywhere, however
		// it is stamped (crdt.Store.HeldOf).
		var cut []crdt.AuthorContext
		c.mesh.View(func(s *crdt.Store) { cut = s.HeldOf(rev.Controller) })
		rec = rev.Record(cut)
		kind, key = "controller", rev.Controller
	}
	if err := c.w.write([]crdt.Record{rec}, nil); err != nil {
		return writeFailed(err)
	}
	c.log.Info("audit", "op", "revoke", "remote", clientIP(r), "admin", name, "kind", kind, "key", key,
		"reason", reason, "dots", dots(rec), "hlc", rec.Head().HLC.String())
	if kind == "controller" && key == c.cfg.Node.Name {
		c.checkRevokedByRoot()
	}
	writeJSON(w, http.StatusAccepted, api.RevocationResponse{Kind: kind, Key: key, HLC: rec.Head().HLC.String()})
	return nil
}

// GET /v1/sessions?identity=ID (admin).
func (c *Controller) listSessions(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	identity := r.URL.Query().Get("identity")
	if identity == "" {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "the identity query parameter is required")
	}
	writeJSON(w, http.StatusOK, api.SessionList{Identity: identity, Sessions: c.Sessions(identity)})
	return nil
}

// Sessions lists the sessions of identity known here, with their
// certificates and status, oldest first. It scans the store.
func (c *Controller) Sessions(identity string) []api.SessionInfo {
	now := crdt.MillisOf(c.now())
	out := []api.SessionInfo{}
	c.mesh.View(func(s *crdt.Store) {
		byID := make(map[crdt.SessionID]int)
		var certs []*crdt.CertRecord
		s.Range(func(rec crdt.Record) bool {
			switch rec := rec.(type) {
			case *crdt.SessionRecord:
				if rec.Identity != identity {
					return true
				}
				if _, dup := byID[rec.ID]; dup {
					return true
				}
				f := crdt.CertFacts{Session: rec.ID, Identity: rec.Identity, Issuer: rec.Author.Name, NotBefore: rec.Created, NotAfter: rec.Expires}
				byID[rec.ID] = len(out)
				out = append(out, api.SessionInfo{
					SessionID:    rec.ID.String(),
					Identity:     rec.Identity,
					Method:       rec.Method,
					Issuer:       rec.Author.Name,
					CreatedAt:    rec.Created.Time().Format(time.RFC3339),
					ExpiresAt:    sessionEnd(s, rec).Time().Format(time.RFC3339),
					Status:       status(s.Live(f, now)),
					Certificates: []api.CertInfo{},
				})
			case *crdt.CertRecord:
				if rec.Identity == identity {
					certs = append(certs, rec)
				}
			}
			return true
		})
		for _, cr := range certs {
			i, ok := byID[cr.Session]
			if !ok {
				continue
			}
			f := crdt.CertFacts{Serial: cr.Serial, Session: cr.Session, Identity: cr.Identity, Issuer: cr.Issuer(), NotBefore: cr.NotBefore, NotAfter: cr.NotAfter}
			ci := api.CertInfo{
				Serial:    cr.Serial.String(),
				NotBefore: cr.NotBefore.Time().Format(time.RFC3339),
				NotAfter:  cr.NotAfter.Time().Format(time.RFC3339),
				Status:    status(s.Admission(f, now, true)),
			}
			if !cr.Supersedes.IsZero() {
				ci.Supersedes = cr.Supersedes.String()
			}
			out[i].Certificates = append(out[i].Certificates, ci)
		}
		for _, cr := range certs {
			if cr.Supersedes.IsZero() {
				continue
			}
			// Mark the rotated-out certificate with its end of grace.
			if i, ok := byID[cr.Session]; ok {
				for j := range out[i].Certificates {
					ci := &out[i].Certificates[j]
					if ci.Serial == cr.Supersedes.String() {
						if ci.SupersededAt == "" || cr.SupersedeAt.Time().Format(time.RFC3339) < ci.SupersededAt {
							ci.SupersededAt = cr.SupersedeAt.Time().Format(time.RFC3339)
						}
					}
				}
			}
		}
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt < out[j].CreatedAt })
	return out
}

func sessionEnd(s *crdt.Store, rec *crdt.SessionRecord) crdt.Millis {
	if end, ok := s.SessionExpires(rec.ID); ok {
		return end
	}
	return rec.Expires
}

func status(v crdt.Verdict) string {
	if v == crdt.Admit {
		return "active"
	}
	return v.String()
}

// GET /v1/status on the API (admin).
func (c *Controller) adminStatus(w http.ResponseWriter, r *http.Request) *apiError {
	if _, e := c.admin(r); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, c.Status())
	return nil
}
