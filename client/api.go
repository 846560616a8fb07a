package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/pki"
)

// maxResponse caps what the SDK reads from a controller.
const maxResponse = 1 << 20

// APIError is an error answer from a controller: its HTTP status and the
// body's {"error", "code"} (api.ErrorBody; the codes are api.Code*).
type APIError struct {
	Method, URL string
	Status      int
	Code        api.Code
	Message     string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("client: %s %s: %d %s: %s", e.Method, e.URL, e.Status, e.Code, msg)
}

// retryable reports whether another controller might answer better: the
// controller failed, is overloaded or cannot write right now.
func retryable(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) {
		return true // transport error
	}
	return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests || ae.Status == http.StatusRequestTimeout
}

// SessionOver reports whether err says the session is over: a
// controller's authoritative answer (api.CodeSessionRevoked,
// api.CodeSessionExpired), or, from controllers that predate those codes,
// every controller asked refusing the session (401 or 403 on a session
// call). One plain refusal is not enough, since a controller that has not
// heard of a session yet refuses it too; and an unreachable controller
// never counts as a refusal.
func SessionOver(err error) bool {
	if _, ok := endReason(err); ok {
		return true
	}
	return allRefused(err)
}

// endReason returns the reason of an authoritative answer in err.
func endReason(err error) (Reason, bool) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if r, ok := endReason(e); ok {
				return r, true
			}
		}
		return ReasonNone, false
	}
	var ae *APIError
	if !errors.As(err, &ae) {
		return ReasonNone, false
	}
	switch ae.Code {
	case api.CodeSessionRevoked:
		return ReasonRevoked, true
	case api.CodeSessionExpired:
		return ReasonExpired, true
	}
	return ReasonNone, false
}

// allRefused reports whether every controller in err refused the session.
func allRefused(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		for _, e := range errs {
			if !allRefused(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden)
}

// notFinal is the next rule of session calls: ask the other controllers
// unless one said the session is over.
func notFinal(err error) bool {
	_, final := endReason(err)
	return !final
}

// httpClient returns a client that trusts roots and, if cert is set,
// presents it. Calls are bounded by their context (hedged); the handshake
// by AttemptTimeout, so that a controller that accepts connections and
// never answers is given up on.
func httpClient(cfg *Config, cert func() (*tls.Certificate, error)) *http.Client {
	tc := pki.HardenTLS(&tls.Config{RootCAs: cfg.RootCAs})
	if cert != nil {
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() }
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 2,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: cfg.AttemptTimeout},
	}
}

// call makes one JSON call; out may be nil. A non-2xx answer is an
// *APIError.
func call(ctx context.Context, hc *http.Client, method, base, path string, in, out any) error {
	u := strings.TrimRight(base, "/") + path
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &APIError{Method: method, URL: u, Status: resp.StatusCode}
		var eb api.ErrorBody
		if json.Unmarshal(raw, &eb) == nil {
			ae.Code, ae.Message = eb.Code, eb.Error
		}
		return ae
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("client: %s %s: response: %w", method, u, err)
	}
	return nil
}

// newKeyAndCSR makes a fresh ECDSA P-256 key and a CSR for it.
func newKeyAndCSR() (*ecdsa.PrivateKey, string, error) {
	key, err := pki.GenerateKey(nil)
	if err != nil {
		return nil, "", fmt.Errorf("client: %w", err)
	}
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, "", fmt.Errorf("client: csr: %w", err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// sessionAnswer is a login's or a rotation's answer, its times parsed as
// it is decoded: a malformed answer fails the call, and the next controller
// is asked.
type sessionAnswer struct {
	api.SessionResponse
	expires, sessionExpires time.Time
}

func (r *sessionAnswer) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &r.SessionResponse); err != nil {
		return err
	}
	var err error
	if r.expires, err = parseTime(r.ExpiresAt); err != nil {
		return fmt.Errorf("expires_at: %w", err)
	}
	if r.sessionExpires, err = parseTime(r.SessionExpiresAt); err != nil {
		return fmt.Errorf("session_expires_at: %w", err)
	}
	return nil
}

// parseTime parses an RFC 3339 time; empty is the zero time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339, s)
}

// session builds a Session from the answer.
func (r *sessionAnswer) session(key *ecdsa.PrivateKey, controller string, received time.Time) (*Session, error) {
	chain, err := pki.ParseCertsPEM([]byte(r.Certificate))
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("client: %s: certificate: %w", controller, errors.Join(err, errNoChain))
	}
	if !key.PublicKey.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("client: %s returned a certificate for another key", controller)
	}
	var ca []*x509.Certificate
	if r.CA != "" {
		if ca, err = pki.ParseCertsPEM([]byte(r.CA)); err != nil {
			return nil, fmt.Errorf("client: %s: ca: %w", controller, err)
		}
	}
	s := &Session{
		ID: r.SessionID, Identity: r.Identity, Serial: strings.ToLower(r.Serial), Key: key, Chain: chain, CA: ca,
		Issued: received, Expires: r.expires, SessionExpires: r.sessionExpires, Controller: controller,
	}
	if s.Expires.IsZero() || s.Expires.After(chain[0].NotAfter) {
		s.Expires = chain[0].NotAfter
	}
	if s.Serial == "" {
		sn, _ := pki.SerialOf(chain[0])
		s.Serial = sn.String()
	}
	if s.SessionExpires.IsZero() {
		s.SessionExpires = s.Expires
	}
	return s, nil
}

// Login creates a session at a controller with token (an OIDC or JWT
// bearer token) and a fresh key: POST /v1/sessions. Controllers are tried
// in order (hedged: see Config.HedgeAfter) while they fail in ways another
// could fix (unreachable, silent, 5xx, 429); a refusal of the token is an
// *APIError at once.
func Login(ctx context.Context, cfg Config, token string) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	return login(ctx, &cfg, token, key, csr)
}

func login(ctx context.Context, cfg *Config, token string, key *ecdsa.PrivateKey, csr string) (*Session, error) {
	hc := httpClient(cfg, nil)
	defer hc.CloseIdleConnections()
	resp, base, err := hedged(ctx, cfg, "", retryable, func(ctx context.Context, base string) (*sessionAnswer, error) {
		var resp sessionAnswer
		return &resp, call(ctx, hc, http.MethodPost, base, api.PathSessions, api.LoginRequest{Token: token, CSR: csr}, &resp)
	})
	if err != nil {
		return nil, err
	}
	return resp.session(key, base, cfg.Clock.Now())
}

// RotateSession asks a controller for a new certificate for s's session,
// with a fresh key, authenticating with s's current certificate: POST
// /v1/sessions/current/certificates. s is not modified. Every controller
// is asked until one rotates it, unless one says the session is over
// (SessionOver).
func RotateSession(ctx context.Context, cfg Config, s *Session) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return rotate(ctx, &cfg, s)
}

func rotate(ctx context.Context, cfg *Config, s *Session) (*Session, error) {
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return nil, err
	}
	cert := s.TLSCertificate()
	hc := httpClient(cfg, func() (*tls.Certificate, error) { return &cert, nil })
	defer hc.CloseIdleConnections()
	// A controller that refuses the session may only not have heard of
	// it yet: ask the others too, unless it says the session is over.
	resp, base, err := hedged(ctx, cfg, s.Controller, notFinal, func(ctx context.Context, base string) (*sessionAnswer, error) {
		var resp sessionAnswer
		return &resp, call(ctx, hc, http.MethodPost, base, api.PathCertificates, api.RotationRequest{CSR: csr}, &resp)
	})
	if err != nil {
		return nil, err
	}
	next, err := resp.session(key, base, cfg.Clock.Now())
	if err != nil {
		return nil, err
	}
	if next.ID != "" && next.ID != s.ID {
		return nil, fmt.Errorf("client: %s rotated into session %s, want %s", base, next.ID, s.ID)
	}
	next.ID = s.ID
	if next.Identity == "" {
		next.Identity = s.Identity
	}
	if len(next.CA) == 0 {
		next.CA = s.CA
	}
	return next, nil
}

// Logout revokes s's session: DELETE /v1/sessions/current.
func Logout(ctx context.Context, cfg Config, s *Session) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cert := s.TLSCertificate()
	hc := httpClient(&cfg, func() (*tls.Certificate, error) { return &cert, nil })
	defer hc.CloseIdleConnections()
	_, _, err := hedged(ctx, &cfg, s.Controller, retryable, func(ctx context.Context, base string) (struct{}, error) {
		return struct{}{}, call(ctx, hc, http.MethodDelete, base, api.PathCurrentSession, nil, nil)
	})
	return err
}

// Admin makes the admin calls with the admin certificate.
type Admin struct {
	cfg Config
	hc  *http.Client
}

// NewAdmin returns an admin client presenting cert (the admin client
// certificate issued by the root).
func NewAdmin(cfg Config, cert tls.Certificate) (*Admin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Admin{cfg: cfg, hc: httpClient(&cfg, func() (*tls.Certificate, error) { return &cert, nil })}, nil
}

// Close releases idle connections.
func (a *Admin) Close() { a.hc.CloseIdleConnections() }

// Revocation names what to revoke: exactly one of SessionID, Identity and
// Serial is set; Reason is optional. (RootSigned, a controller's
// revocation, is sent by `certmesh pki revoke-controller`, not by Revoke.)
type Revocation = api.RevocationRequest

// RevocationResult is a controller's 202 answer.
type RevocationResult = api.RevocationResponse

// Revoke revokes a session, an identity or a serial: POST /v1/revocations.
func (a *Admin) Revoke(ctx context.Context, r Revocation) (*RevocationResult, error) {
	n := 0
	for _, f := range []string{r.SessionID, r.Identity, r.Serial} {
		if f != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("client: a revocation names exactly one of session, identity and serial")
	}
	out, _, err := hedged(ctx, &a.cfg, "", retryable, func(ctx context.Context, base string) (*RevocationResult, error) {
		var out RevocationResult
		return &out, call(ctx, a.hc, http.MethodPost, base, api.PathRevocations, r, &out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Status fetches a node's /v1/status from statusURL: the metrics listener
// (plain HTTP) or the API (HTTPS with the admin certificate). A URL without
// a path gets /v1/status.
func (a *Admin) Status(ctx context.Context, statusURL string) (*Status, error) {
	return FetchStatus(ctx, a.hc, statusURL)
}

// FetchStatus fetches /v1/status with hc (http.DefaultClient if nil).
func FetchStatus(ctx context.Context, hc *http.Client, statusURL string) (*Status, error) {
	u, err := url.Parse(statusURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: status URL %q is not http(s)://host:port[/path]", statusURL)
	}
	path := u.Path
	if path == "" || path == "/" {
		path = api.PathStatus
	}
	u.Path = ""
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	var st Status
	if err := call(ctx, hc, http.MethodGet, u.String(), path, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Status is a node's /v1/status document (package api). A router's
// also holds its connection count and readiness (api.RouterStatus), which
// Status leaves out.
type Status = api.Status

// MemberStatus is one member in a Status.
type MemberStatus = api.MemberStatus
