package client

import (
	"context"
	"errors"
	"fmt"
)

// TokenSource returns a fresh login token (an OIDC ID token or a JWT),
// for a Client to log in again when its session reaches its end
// (Config.Token). It is called from the client's goroutines and must
// honour ctx.
type TokenSource func(ctx context.Context) (string, error)

// StaticToken is a TokenSource that always returns tok: for a long-lived
// JWT of a configured signer.
func StaticToken(tok string) TokenSource {
	return func(context.Context) (string, error) { return tok, nil }
}

// renewLoop replaces session s, which no rotation can extend, by logging
// in again before it ends, retrying with backoff until it ends.
func (c *Client) renewLoop(ctx context.Context, s *Session) {
	for attempt := 0; c.Err() == nil && c.Session() == s; attempt++ {
		// A session bound to its token (the controllers'
		// session.bind_to_token) is extended with a fresh token,
		// keeping its id, certificate and connections; only if that
		// does not move its end does the client log in again.
		if c.extend(ctx, s) {
			return
		}
		err := c.relogin(ctx, errors.New("the session is about to reach its end"))
		if err == nil || !c.cfg.Clock.Now().Before(s.SessionExpires) {
			return
		}
		d := c.cfg.backoff(attempt)
		c.cfg.Logger.Warn("client: login before the session's end failed", "err", err, "retry_in", d)
		if !c.wait(ctx, d) {
			return
		}
	}
}

// relogin logs in with a fresh token from Config.Token and makes the new
// session current (LoggedIn). why is what ended, or is about to end, the
// old one.
func (c *Client) relogin(ctx context.Context, why error) error {
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	if err := c.Err(); err != nil {
		return err
	}
	ctx, cancel := c.bound(ctx)
	defer cancel()
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return fmt.Errorf("client: token source: %w", err)
	}
	key, csr, err := newKeyAndCSR()
	if err != nil {
		return err
	}
	next, err := login(ctx, &c.cfg, tok, key, csr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	old := c.sess.ID
	c.sess = next
	c.rotFailing = false
	c.mu.Unlock()
	c.cfg.Logger.Info("client: logged in again", "old_session", old, "session", next.ID, "why", why)
	c.emit(Event{Kind: LoggedIn, Reason: ReasonExpired, Serial: next.Serial, Session: next, Err: why})
	return nil
}
