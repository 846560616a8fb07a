package issuer

import (
	"net/http"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
)

// sessionRefusal is the answer to a session certificate whose verdict is
// not Admit on a session route. A revocation or the session's end is this
// controller's authoritative word, with its own code, so that a client
// need not hear every controller refuse before it believes the session is
// over (an unreachable controller would otherwise keep it hoping). Other
// verdicts stay CodeForbidden. The status stays 403 whatever the code, as
// clients that predate the codes expect.
func sessionRefusal(v crdt.Verdict, serial crdt.Serial) *apiError {
	switch {
	case v.Revoked():
		return fail(http.StatusForbidden, api.CodeSessionRevoked, "certificate %v is no longer valid: %v", serial, v)
	case v == crdt.SessionExpired:
		return fail(http.StatusForbidden, api.CodeSessionExpired, "certificate %v is no longer valid: %v; log in again", serial, v)
	}
	return fail(http.StatusForbidden, api.CodeForbidden, "certificate %v is no longer valid: %v", serial, v)
}

// knownSession refuses a session this controller has not heard of (yet:
// another controller may have), or whose record disagrees with the
// certificate.
func knownSession(sess *crdt.SessionRecord, f crdt.CertFacts) *apiError {
	switch {
	case sess == nil:
		return fail(http.StatusForbidden, api.CodeForbidden, "session %v is not known at this controller (yet); retry, or log in again", f.Session)
	case sess.Identity != f.Identity:
		return fail(http.StatusForbidden, api.CodeForbidden, "certificate and session %v disagree on the identity", f.Session)
	}
	return nil
}

// GET /v1/sessions/current: is the session of the client's certificate
// still valid? A read: it writes nothing, so a client may ask after every
// unexplained close of a connection without loading the controllers.
func (c *Controller) currentSession(w http.ResponseWriter, r *http.Request) *apiError {
	f, e := c.sessionCert(r)
	if e != nil {
		return e
	}
	now := crdt.MillisOf(c.now())
	var (
		live, cert crdt.Verdict
		sess       *crdt.SessionRecord
	)
	c.mesh.View(func(s *crdt.Store) {
		live = s.Live(f, now)
		cert = s.Admission(f, now, false)
		sess, _ = s.Session(f.Session)
	})
	if live != crdt.Admit {
		return sessionRefusal(live, f.Serial)
	}
	if e := knownSession(sess, f); e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, api.SessionInfo{
		SessionID: sess.ID.String(),
		Identity:  sess.Identity,
		Method:    sess.Method,
		Issuer:    sess.Author.Name,
		CreatedAt: sess.Created.Time().Format(time.RFC3339),
		ExpiresAt: sess.Expires.Time().Format(time.RFC3339),
		Status:    status(live),
		Certificates: []api.CertInfo{{
			Serial:    f.Serial.String(),
			NotBefore: f.NotBefore.Time().Format(time.RFC3339),
			NotAfter:  f.NotAfter.Time().Format(time.RFC3339),
			Status:    status(cert),
		}},
	})
	return nil
}
