package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"

	"github.com/certmesh/certmesh/api"
)

// Whether the session is still valid is the controllers' to say, never a
// router's: a router with the gossip key and no controller key may lie,
// and one behind on the replicated state refuses what a controller has
// just issued. So a router's refusal, or a live connection closed without
// a word, makes the client ask its controllers (GET
// /v1/sessions/current, a read), and only their answer ends the session.
// One authoritative answer (api.CodeSessionRevoked, CodeSessionExpired)
// is enough; a controller that cannot be reached leaves the question open,
// never answers "valid".

// checkState is what the controllers say of the session.
type checkState int

const (
	sessionUnknown checkState = iota // no controller could say
	sessionValid                     // valid, and so is the certificate presented
	sessionRenewed                   // valid; the certificate was not, and was rotated
	sessionEnded                     // over: Client.Err says why
)

// checkSession asks the controllers about the session and acts on the
// answer: it ends the session on an authoritative refusal, and rotates a
// certificate the controllers no longer accept for a valid session. Calls
// that overlap share one answer.
func (c *Client) checkSession(ctx context.Context) checkState {
	gen := c.checks.Load()
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	if c.Err() != nil {
		return sessionEnded
	}
	if c.checks.Load() != gen {
		return c.lastCheck // answered while this call waited
	}
	state := c.askControllers(ctx)
	c.lastCheck = state
	c.checks.Add(1)
	return state
}

func (c *Client) askControllers(ctx context.Context) checkState {
	s := c.Session()
	info, err := sessionStatus(ctx, &c.cfg, s)
	switch {
	case err == nil:
		if len(info.Certificates) == 1 && info.Certificates[0].Status != "active" {
			// Superseded, say: the session holds, this certificate
			// does not.
			if c.Rotate(ctx) == nil {
				return sessionRenewed
			}
		}
		if c.Err() != nil {
			return sessionEnded
		}
		return sessionValid
	case unsupported(err):
		// Controllers that predate the route: a rotation asks them,
		// and replaces a certificate a router may no longer take.
		if c.Rotate(ctx) == nil {
			return sessionRenewed
		}
	default:
		if reason, over := sessionOverReason(err); over {
			c.end(ctx, reason, err)
		}
	}
	if c.Err() != nil {
		return sessionEnded
	}
	return sessionUnknown
}

// sessionStatus asks GET PathCurrentSession with s's certificate.
func sessionStatus(ctx context.Context, cfg *Config, s *Session) (*api.SessionInfo, error) {
	cert := s.TLSCertificate()
	hc := httpClient(cfg, func() (*tls.Certificate, error) { return &cert, nil })
	defer hc.CloseIdleConnections()
	info, _, err := hedged(ctx, cfg, s.Controller, notFinal, func(ctx context.Context, base string) (*api.SessionInfo, error) {
		var info api.SessionInfo
		return &info, call(ctx, hc, http.MethodGet, base, api.PathCurrentSession, nil, &info)
	})
	return info, err
}

// unsupported reports whether every controller that answered does not
// know the route (an older controller: 405 or 404) and none refused.
func unsupported(err error) bool {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	seen := false
	for _, e := range errs {
		var ae *APIError
		if !errors.As(e, &ae) {
			continue
		}
		if ae.Status != http.StatusMethodNotAllowed && ae.Status != http.StatusNotFound {
			return false
		}
		seen = true
	}
	return seen
}

// suspect starts a background session check, unless one is running: the
// path of connections an application holds itself (Dial, DialContext, an
// http.Client), whose refusals and closes the client sees but whose
// errors go to the application.
func (c *Client) suspect() {
	select {
	case c.checking <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-c.checking }()
		ctx, cancel := c.bound(context.Background())
		defer cancel()
		c.checkSession(ctx)
	}()
}
