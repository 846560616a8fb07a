package issuer

import (
	"net/http"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// POST /v1/sessions/current/token: a fresh token for the session of the
// client's certificate (session.bind_to_token).
//
// A bound session ends when the token it was opened with expires; this
// moves its end to the fresh token's expiry, capped at its creation plus
// session.max_lifetime, by writing another session record for the same id
// with the later Expires (replicas join a session's expiry by max:
// crdt.Store.SessionExpires). The session keeps its id, its certificates and
// its live connections: routers close them at the new end, not before.
//
// Both proofs are required: the certificate (this session's key) and a
// token for the same identity (the provider still vouches for the person).
// Only the creating controller may write the session's records (trust's
// creator rule), so another answers 503 unavailable naming it, and the
// client tries the next controller. A session that is not bound, or a
// token that ends no later than the session, changes nothing: 200 with the
// session's current end.
func (c *Controller) refreshToken(w http.ResponseWriter, r *http.Request) *apiError {
	var req api.TokenRequest
	f, e := c.sessionBody(r, &req)
	if e != nil {
		return e
	}
	if req.Token == "" {
		return fail(http.StatusBadRequest, api.CodeBadRequest, "token is required")
	}
	if !pki.CreatedBy(f.Session, c.author.Name) {
		return fail(http.StatusServiceUnavailable, api.CodeUnavailable, "session %v was created by another controller, and only its creator can extend it: present the token there", f.Session)
	}
	if e := c.checkWrite(); e != nil {
		return e
	}
	id, e := c.verifyToken(r, req.Token, "token refresh")
	if e != nil {
		return e
	}
	if id.ID != f.Identity {
		return fail(http.StatusForbidden, api.CodeForbidden, "the token is for identity %.200q, and the session for %.200q", id.ID, f.Identity)
	}
	verdict, sess, end := c.sessionOf(f, c.now(), false)
	if e := knownSession(sess, f); e != nil {
		return e
	}
	if verdict != crdt.Admit {
		return sessionRefusal(verdict, f.Serial)
	}
	newEnd := min(crdt.MillisOf(id.Expiry), crdt.MillisOf(sess.Created.Time().Add(c.cfg.Session.MaxLifetime)))
	if newEnd > end {
		rec := &crdt.SessionRecord{ID: sess.ID, Identity: sess.Identity, Method: sess.Method, Created: sess.Created, Expires: newEnd}
		if err := c.w.write([]crdt.Record{rec}, nil); err != nil {
			return writeFailed(err)
		}
		c.log.Info("audit", "op", "token", "remote", clientIP(r), "identity", f.Identity, "session", f.Session.String(),
			"serial", f.Serial.String(), "expires", newEnd.Time().Format(time.RFC3339), "dots", dots(rec), "hlc", rec.HLC.String())
		end = newEnd
	}
	writeJSON(w, http.StatusOK, api.TokenResponse{SessionID: f.Session.String(), Identity: f.Identity, SessionExpiresAt: end.Time().Format(time.RFC3339)})
	return nil
}
