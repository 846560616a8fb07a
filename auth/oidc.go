package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
)

// asymmetricAlgs returns the asymmetric JWS algorithms of RFC 7518 and
// RFC 8037, the only ones certmesh accepts: never "none", never HMAC.
func asymmetricAlgs() []string {
	return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// oidcProvider verifies the ID tokens of one OpenID Connect issuer.
type oidcProvider struct {
	cfg    OIDCConfig
	opts   Options
	claims claimChecker

	// verifier is nil until discovery succeeds, then never changes.
	verifier atomic.Pointer[oidc.IDTokenVerifier]
	// ready is closed when verifier is set.
	ready chan struct{}
	// lastErr is the error of the latest failed discovery attempt.
	lastErr atomic.Pointer[error]
}

func newOIDCProvider(ctx context.Context, cfg OIDCConfig, namespace string, opts Options) *oidcProvider {
	p := &oidcProvider{
		cfg:    cfg,
		opts:   opts,
		claims: newClaimChecker(cfg.Issuer, cfg.Audience, cfg.IdentityClaim, "oidc", namespace, opts).withRoles(cfg.RolesClaim),
		ready:  make(chan struct{}),
	}
	go p.discoverLoop(oidc.ClientContext(ctx, opts.HTTPClient))
	return p
}

// discoverLoop runs discovery until it succeeds or ctx ends, waiting
// DiscoveryBackoffMin, then twice that, up to DiscoveryBackoffMax, between
// attempts.
func (p *oidcProvider) discoverLoop(ctx context.Context) {
	log := p.opts.Logger.With(slog.String("issuer", p.cfg.Issuer))
	wait := p.opts.DiscoveryBackoffMin
	for attempt := 1; ; attempt++ {
		err := p.discover(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("auth: oidc issuer discovered", slog.Int("attempt", attempt))
			}
			return
		}
		p.lastErr.Store(&err)
		if ctx.Err() != nil {
			return
		}
		log.Warn("auth: oidc discovery failed; tokens of this issuer are refused until it succeeds",
			slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, p.opts.DiscoveryBackoffMax)
	}
}

func (p *oidcProvider) discover(ctx context.Context) error {
	attemptCtx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	prov, err := oidc.NewProvider(attemptCtx, p.cfg.Issuer)
	if err != nil {
		return err
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return err
	}
	if err := checkHTTPURL(meta.JWKSURL); err != nil {
		return fmt.Errorf("discovery document's jwks_uri: %w", err)
	}
	var algs []string
	for _, a := range meta.Algs {
		if slices.Contains(asymmetricAlgs(), a) {
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		// The OIDC default when the issuer lists no usable algorithm.
		algs = []string{oidc.RS256}
	}
	keys := &remoteKeys{
		url:         meta.JWKSURL,
		client:      p.opts.HTTPClient,
		now:         p.opts.Now,
		minInterval: p.opts.JWKSRefreshInterval,
	}
	// The issuer counts as reachable once its keys are too.
	if err := keys.refresh(attemptCtx); err != nil {
		return err
	}
	p.verifier.Store(oidc.NewVerifier(p.cfg.Issuer, oidcKeySet{keys: keys, parser: newTokenParser(algs)}, &oidc.Config{
		SupportedSigningAlgs: algs,
		// Audience, exp and nbf are checked by claimChecker, so that both
		// kinds of issuer apply the same leeway and report the same codes
		// (go-oidc allows no leeway on exp and five minutes on nbf).
		SkipClientIDCheck: true,
		SkipExpiryCheck:   true,
	}))
	close(p.ready)
	return nil
}

func (p *oidcProvider) verify(ctx context.Context, raw string) (Identity, *Error) {
	v := p.verifier.Load()
	if v == nil {
		var cause error
		if e := p.lastErr.Load(); e != nil {
			cause = *e
		}
		return Identity{}, newError(CodeIssuerUnavailable, cause, fmt.Sprintf("issuer %s cannot be reached to verify the token", p.cfg.Issuer))
	}
	probe := &fetchProbe{}
	tok, err := v.Verify(context.WithValue(ctx, fetchProbeKey{}, probe), raw)
	if err != nil {
		if probe.err != nil {
			return Identity{}, newError(CodeIssuerUnavailable, probe.err, fmt.Sprintf("keys of issuer %s cannot be fetched to verify the token", p.cfg.Issuer))
		}
		return Identity{}, newError(CodeTokenInvalid, err, "token signature or format is invalid")
	}
	claims := jwt.MapClaims{}
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, newError(CodeTokenInvalid, err, "token claims are malformed")
	}
	return p.claims.check(claims)
}

// oidcKeySet lets go-oidc's IDTokenVerifier (which has already parsed the
// token, checked its alg against the issuer's and that it has one signature)
// check the signature against the keys cached by remoteKeys, the same code
// that serves JWT signers. go-oidc's own RemoteKeySet is not used: a lookup
// that starts just as another fetch finishes can be handed that fetch's
// stale result, refusing the first tokens of a freshly rotated key.
//
// go-oidc formats a key set's error into a string, so whether the keys could
// not be fetched (issuer_unavailable, not token_invalid) travels back in a
// fetchProbe carried by the context.
type oidcKeySet struct {
	keys   *remoteKeys
	parser *jwt.Parser
}

type fetchProbeKey struct{}

// fetchProbe is owned by one Verify call.
type fetchProbe struct {
	err error // an *unavailableError from the key set
}

func (k oidcKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	if err := verifySignature(ctx, k.parser, k.keys, raw, jwt.MapClaims{}); err != nil {
		var unavailable *unavailableError
		if probe, ok := ctx.Value(fetchProbeKey{}).(*fetchProbe); ok && errors.As(err, &unavailable) {
			probe.err = err
		}
		return nil, err
	}
	// The parse above has checked that raw is three base64url segments.
	_, rest, _ := strings.Cut(raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	return base64.RawURLEncoding.DecodeString(payload)
}
