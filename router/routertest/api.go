package routertest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/strictjson"
	"github.com/certmesh/certmesh/pki"
)

// API is a fake controller HTTP API (SPEC.md section 3) over a
// Controller, for the client SDK's tests: tokens are "token:<identity>",
// every record written is handed to Publish. It checks rotations against
// the controller's own store as a controller does.
type API struct {
	URL  string
	Ctrl *Controller
	// SessionTTL is the lifetime of the sessions it creates.
	SessionTTL time.Duration

	publish func([]crdt.Record) error
	srv     *httptest.Server
	root    *x509.Certificate

	mu    sync.Mutex
	down  bool
	calls map[string]int
}

// NewAPI serves ctrl's API over HTTPS on loopback, with a server
// certificate from ctrl's intermediate, until the test ends.
func NewAPI(t testing.TB, p *PKI, ctrl *Controller, publish func([]crdt.Record) error) *API {
	t.Helper()
	cert, err := pki.IssueServer(ctrl.CA, []string{"127.0.0.1", "localhost"}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &API{Ctrl: ctrl, SessionTTL: 24 * time.Hour, publish: publish, root: p.Root.Cert, calls: make(map[string]int)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", a.login)
	mux.HandleFunc("POST /v1/sessions/current/certificates", a.rotate)
	mux.HandleFunc("DELETE /v1/sessions/current", a.logout)
	mux.HandleFunc("POST /v1/revocations", a.revoke)
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		down := a.down
		a.calls[r.Method+" "+r.URL.Path]++
		a.mu.Unlock()
		if down {
			apiError(w, http.StatusServiceUnavailable, "unavailable", "down for the test")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	a.srv.TLS = pki.HardenTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    p.RootPool(),
	})
	a.srv.StartTLS()
	a.URL = a.srv.URL
	t.Cleanup(a.srv.Close)
	return a
}

// SetDown makes every call fail with 503 (true) or work again.
func (a *API) SetDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
}

// Calls is how many calls of "METHOD /path" were made.
func (a *API) Calls(route string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[route]
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}

func (a *API) respond(w http.ResponseWriter, cc *ClientCert, sessionEnd crdt.Millis) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]string{
		"session_id":         cc.Session.String(),
		"identity":           cc.Identity,
		"serial":             cc.Serial.String(),
		"certificate":        string(pki.EncodeCertsPEM(cc.Chain...)),
		"ca":                 string(pki.EncodeCertsPEM(a.root)),
		"expires_at":         cc.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"session_expires_at": sessionEnd.Time().Format(time.RFC3339),
	})
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ Token, CSR string }
	if err := strictjson.Decode(r.Body, &req); err != nil || req.Token == "" || req.CSR == "" {
		apiError(w, http.StatusBadRequest, "bad_request", "token and csr are required")
		return
	}
	identity, ok := cutPrefix(req.Token, "token:")
	if !ok || identity == "" {
		apiError(w, http.StatusUnauthorized, "token_invalid", "not a test token")
		return
	}
	pub, err := pki.CheckCSR([]byte(req.CSR))
	if err != nil {
		apiError(w, http.StatusBadRequest, "csr_invalid", err.Error())
		return
	}
	cc, recs, err := a.Ctrl.LoginKey(identity, pub, a.SessionTTL)
	if err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	if err := a.publish(recs); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a.respond(w, cc, recs[0].(*crdt.SessionRecord).Expires)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) < len(p) || s[:len(p)] != p {
		return s, false
	}
	return s[len(p):], true
}

// sessionCert reads the client's session certificate facts.
func (a *API) sessionCert(w http.ResponseWriter, r *http.Request) (crdt.CertFacts, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		apiError(w, http.StatusUnauthorized, "forbidden", "a session certificate is required (mTLS)")
		return crdt.CertFacts{}, false
	}
	chain := r.TLS.VerifiedChains[0]
	issuer, err := pki.ControllerOf(chain, TrustDomain)
	if err != nil {
		apiError(w, http.StatusForbidden, "forbidden", err.Error())
		return crdt.CertFacts{}, false
	}
	id, err := pki.IDOf(chain[0])
	if err != nil || id.Kind != pki.KindIdentity {
		apiError(w, http.StatusForbidden, "forbidden", "not a session certificate")
		return crdt.CertFacts{}, false
	}
	sid, err := crdt.ParseSessionID(id.SessionID)
	if err != nil {
		apiError(w, http.StatusForbidden, "forbidden", err.Error())
		return crdt.CertFacts{}, false
	}
	sn, _ := pki.SerialOf(chain[0])
	return crdt.CertFacts{Serial: crdt.Serial(sn), Session: sid, Identity: id.Name, Issuer: issuer,
		NotBefore: crdt.MillisOf(chain[0].NotBefore), NotAfter: crdt.MillisOf(chain[0].NotAfter)}, true
}

func (a *API) rotate(w http.ResponseWriter, r *http.Request) {
	f, ok := a.sessionCert(w, r)
	if !ok {
		return
	}
	var req struct{ CSR string }
	if err := strictjson.Decode(r.Body, &req); err != nil || req.CSR == "" {
		apiError(w, http.StatusBadRequest, "bad_request", "csr is required")
		return
	}
	var v crdt.Verdict
	var end crdt.Millis
	a.Ctrl.View(func(s *crdt.Store) {
		v = s.Admission(f, crdt.MillisOf(time.Now()), false)
		if sess, ok := s.Session(f.Session); ok {
			end = sess.Expires
		}
	})
	if v != crdt.Admit || end == 0 {
		apiError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("certificate %v is no longer valid: %v", f.Serial, v))
		return
	}
	pub, err := pki.CheckCSR([]byte(req.CSR))
	if err != nil {
		apiError(w, http.StatusBadRequest, "csr_invalid", err.Error())
		return
	}
	old := &ClientCert{Identity: f.Identity, Session: f.Session, Serial: f.Serial}
	cc, recs, err := a.Ctrl.RotateKey(old, pub, end)
	if err != nil {
		apiError(w, http.StatusForbidden, "forbidden", err.Error())
		return
	}
	if err := a.publish(recs); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a.respond(w, cc, end)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	f, ok := a.sessionCert(w, r)
	if !ok {
		return
	}
	if err := a.publish(a.Ctrl.RevokeSession(f.Session)); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || !pki.IsAdmin(r.TLS.VerifiedChains[0], TrustDomain) {
		apiError(w, http.StatusForbidden, "forbidden", "the admin certificate is required")
		return
	}
	var req struct {
		SessionID string `json:"session_id"`
		Identity  string `json:"identity"`
		Serial    string `json:"serial"`
	}
	if err := strictjson.Decode(r.Body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var recs []crdt.Record
	kind, key := "", ""
	switch {
	case req.SessionID != "":
		id, err := crdt.ParseSessionID(req.SessionID)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		recs, kind, key = a.Ctrl.RevokeSession(id), "session", id.String()
	case req.Identity != "":
		recs, kind, key = a.Ctrl.RevokeIdentity(req.Identity), "identity", req.Identity
	case req.Serial != "":
		s, err := crdt.ParseSerial(req.Serial)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		recs, kind, key = a.Ctrl.RevokeSerial(s), "serial", s.String()
	default:
		apiError(w, http.StatusBadRequest, "bad_request", "nothing to revoke")
		return
	}
	if err := a.publish(recs); err != nil {
		apiError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(map[string]string{"kind": kind, "key": key, "hlc": recs[0].Head().HLC.String()})
}
