package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/certmesh/certmesh/api"
)

// RefreshSessionToken presents a fresh login token for s's session (POST
// /v1/sessions/current/token), authenticating with s's certificate, and
// returns a copy of s with the session's new end. A controller bound to
// tokens (session.bind_to_token) ends a session when its token expires; a
// fresh token for the same identity moves that end to the token's expiry,
// keeping the session, its certificate and its live connections. Only the
// controller that created the session can extend it; the others answer 503
// and the next is tried. s is not modified.
func RefreshSessionToken(ctx context.Context, cfg Config, s *Session, token string) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cert := s.TLSCertificate()
	hc := httpClient(&cfg, func() (*tls.Certificate, error) { return &cert, nil })
	defer hc.CloseIdleConnections()
	var resp api.TokenResponse
	_, err := eachController(&cfg, s.Controller, nil, func(base string) error {
		return call(ctx, hc, http.MethodPost, base, api.PathSessionToken, api.TokenRequest{Token: token}, &resp)
	})
	if err != nil {
		return nil, err
	}
	if resp.SessionID != s.ID {
		return nil, fmt.Errorf("client: token refresh answered for session %q, want %s", resp.SessionID, s.ID)
	}
	end, err := parseTime(resp.SessionExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("client: token refresh: session_expires_at: %w", err)
	}
	next := *s
	next.SessionExpires = end
	return &next, nil
}

// RefreshToken presents a fresh login token for the client's session (see
// RefreshSessionToken) and records the session's new end. Call it from the
// token source's refresh hook: whenever the identity provider hands the
// application a new ID token (an OAuth2 refresh), before the current one
// expires.
func (c *Client) RefreshToken(ctx context.Context, token string) error {
	if err := c.Err(); err != nil {
		return err
	}
	// A refusal is the token's (expired, another identity) as often as
	// the session's: it does not end the client; rotation finds out.
	next, err := RefreshSessionToken(ctx, c.cfg, c.Session(), token)
	if err != nil {
		return err
	}
	c.mu.Lock()
	// A rotation may have replaced the session meanwhile: keep its
	// certificate, take the new end.
	if c.sess.ID == next.ID && next.SessionExpires.After(c.sess.SessionExpires) {
		s := *c.sess
		s.SessionExpires = next.SessionExpires
		c.sess = &s
	}
	c.mu.Unlock()
	return nil
}
