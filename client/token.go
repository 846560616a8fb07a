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
	return refreshToken(ctx, &cfg, s, token)
}

func refreshToken(ctx context.Context, cfg *Config, s *Session, token string) (*Session, error) {
	cert := s.TLSCertificate()
	hc := httpClient(cfg, func() (*tls.Certificate, error) { return &cert, nil })
	defer hc.CloseIdleConnections()
	resp, _, err := hedged(ctx, cfg, s.Controller, notFinal, func(ctx context.Context, base string) (*api.TokenResponse, error) {
		var resp api.TokenResponse
		return &resp, call(ctx, hc, http.MethodPost, base, api.PathSessionToken, api.TokenRequest{Token: token}, &resp)
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
	if end.After(s.SessionExpires) {
		next.extended = cfg.Clock.Now()
	}
	return &next, nil
}

// RefreshToken presents a fresh login token for the client's session (see
// RefreshSessionToken) and records the session's new end. With
// Config.Token set the client does this itself before the session's end;
// call it when the identity provider hands the application a new ID token
// (an OAuth2 refresh) some other way.
func (c *Client) RefreshToken(ctx context.Context, token string) error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	// A refusal is the token's (expired, another identity) as often as
	// the session's: it does not end the client; rotation finds out.
	next, err := refreshToken(ctx, &c.cfg, c.Session(), token)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.sess.ID == next.ID && next.SessionExpires.After(c.sess.SessionExpires) {
		s := *c.sess
		s.SessionExpires, s.extended = next.SessionExpires, next.extended
		c.sess = &s
	}
	return nil
}

// extend tries to move the end of session s with a fresh token from
// Config.Token, and reports whether it did. A controller that does not
// bind sessions to tokens leaves the end where it was (or does not know
// the route): the caller then logs in again.
func (c *Client) extend(ctx context.Context, s *Session) bool {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return false // relogin asks the token source again and reports it
	}
	if err := c.RefreshToken(ctx, tok); err != nil {
		c.cfg.Logger.Debug("client: token refresh did not extend the session", "err", err)
		return false
	}
	return c.Session().SessionExpires.After(s.SessionExpires)
}
