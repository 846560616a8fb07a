package auth

import (
	"context"
	"fmt"
	"time"
)

// The states of an issuer in Health.
const (
	// StateDiscovering: the first discovery attempt has not ended yet.
	StateDiscovering = "discovering"
	// StateUnreachable: discovery has failed (the issuer or its keys did
	// not answer, or its TLS certificate did not verify) and is retried
	// with backoff; its tokens get 503 issuer_unavailable.
	StateUnreachable = "unreachable"
	// StateMisconfigured: the issuer answered with a discovery document
	// that contradicts the config (an issuer string that differs, a bad
	// jwks_uri). Retried at the longest backoff, but it needs an operator:
	// the controller is not ready while any issuer is in this state.
	StateMisconfigured = "misconfigured"
	// StateReady: discovered, and the latest fetch of its keys succeeded.
	StateReady = "ready"
	// StateDegraded: discovered, but the latest fetch of its keys failed:
	// the cached keys are used, tokens naming other keys get 503.
	StateDegraded = "degraded"
)

// Health is one configured issuer's state, for /v1/status and metrics.
type Health struct {
	Name   string // the entry's name (an OIDC issuer's defaults to its host)
	Issuer string
	Kind   string // "oidc" or "jwt"
	State  string // one of the State* constants
	// Discovered: the OIDC discovery document has been read and its keys
	// fetched once. Always true for a JWT signer.
	Discovered bool
	// Keys is the number of keys cached.
	Keys int
	// LastKeyRefresh is when its keys were last fetched successfully
	// (zero: never, or a keys_file).
	LastKeyRefresh time.Time
	// LastError is the latest failure of discovery or of a key fetch,
	// empty once a later fetch succeeded; LastErrorAt is when a key fetch
	// last failed.
	LastError   string
	LastErrorAt time.Time
}

// Health reports every configured issuer's state, OIDC issuers first, in
// config order.
func (v *Verifier) Health() []Health {
	out := make([]Health, 0, len(v.oidc)+len(v.jwt))
	for _, p := range v.oidc {
		out = append(out, p.health())
	}
	for _, p := range v.jwt {
		out = append(out, p.health())
	}
	return out
}

// Misconfigured returns an error naming the first OIDC issuer whose
// discovery document contradicts the config (StateMisconfigured), nil if
// none does.
func (v *Verifier) Misconfigured() error {
	for _, p := range v.oidc {
		if p.verifier.Load() == nil && p.misconfigured.Load() {
			if e := p.lastErr.Load(); e != nil {
				return fmt.Errorf("auth: issuer %s is misconfigured: %w", p.cfg.Issuer, *e)
			}
		}
	}
	return nil
}

// Ready reports whether every OIDC issuer has been discovered.
func (v *Verifier) Ready() bool {
	for _, p := range v.oidc {
		if p.verifier.Load() == nil {
			return false
		}
	}
	return true
}

// WaitAttempted blocks until every OIDC issuer's first discovery attempt
// has ended, successful or not, or ctx ends. Then Ready tells whether
// they all succeeded.
func (v *Verifier) WaitAttempted(ctx context.Context) error {
	for _, p := range v.oidc {
		select {
		case <-p.attempted:
		case <-ctx.Done():
			return fmt.Errorf("auth: waiting for issuer %s: %w", p.cfg.Issuer, ctx.Err())
		}
	}
	return nil
}
