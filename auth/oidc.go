package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"

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
	client *http.Client

	// verifier is nil until discovery succeeds, then never changes; keys
	// is its key set, stored before it.
	verifier atomic.Pointer[oidc.IDTokenVerifier]
	keys     atomic.Pointer[remoteKeys]
	// ready is closed when verifier is set; attempted when the first
	// discovery attempt has ended, whatever its outcome.
	ready, attempted chan struct{}
	// lastErr is the error of the latest failed discovery attempt, and
	// misconfigured whether it is one that retrying will not mend by
	// itself (the issuer's discovery document disagrees with the config).
	lastErr       atomic.Pointer[error]
	misconfigured atomic.Bool
}

func newOIDCProvider(ctx context.Context, cfg OIDCConfig, namespace string, client *http.Client, opts Options) *oidcProvider {
	p := &oidcProvider{
		cfg:       cfg,
		opts:      opts,
		client:    client,
		claims:    newClaimChecker(cfg.Issuer, cfg.Audience, cfg.IdentityClaim, "oidc", namespace, opts).withRoles(cfg.RolesClaim),
		ready:     make(chan struct{}),
		attempted: make(chan struct{}),
	}
	go p.discoverLoop(oidc.ClientContext(ctx, client))
	return p
}

// configError is a discovery failure that retrying will not mend by
// itself: the issuer's discovery document disagrees with the config.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// discoverLoop runs discovery until it succeeds or ctx ends, waiting
// DiscoveryBackoffMin, then twice that, up to DiscoveryBackoffMax, between
// attempts. A misconfiguration is retried too (the operator may fix the
// provider's side), at the longest wait.
func (p *oidcProvider) discoverLoop(ctx context.Context) {
	log := p.opts.Logger.With(slog.String("issuer", p.cfg.Issuer))
	wait := p.opts.DiscoveryBackoffMin
	for attempt := 1; ; attempt++ {
		err := p.discover(ctx)
		if err == nil {
			go p.keys.Load().refreshLoop(ctx)
			p.misconfigured.Store(false)
			if attempt == 1 {
				close(p.attempted)
			}
			if attempt > 1 {
				log.Info("auth: oidc issuer discovered", slog.Int("attempt", attempt))
			}
			return
		}
		var ce *configError
		p.misconfigured.Store(errors.As(err, &ce))
		p.lastErr.Store(&err)
		if attempt == 1 {
			close(p.attempted)
		}
		if ctx.Err() != nil {
			return
		}
		if ce != nil {
			wait = p.opts.DiscoveryBackoffMax
			log.Error("auth: oidc issuer is misconfigured; its tokens are refused and the controller is not ready until it is fixed",
				slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))
		} else {
			log.Warn("auth: oidc discovery failed; tokens of this issuer are refused until it succeeds",
				slog.Int("attempt", attempt), slog.Duration("retry_in", wait), slog.Any("error", err))
		}
		if !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, p.opts.DiscoveryBackoffMax)
	}
}

func (p *oidcProvider) discover(ctx context.Context) error {
	attemptCtx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	prov, err := oidc.NewProvider(attemptCtx, p.cfg.Issuer)
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		// Tokens carry the discovered string as iss, so no token could
		// ever match the configured one (OpenID Connect Discovery 1.0,
		// section 4.3: the two must be identical).
		return &configError{fmt.Sprintf("issuer %q is configured, but its discovery document says its issuer is %q; they must be identical, character for character (a trailing slash counts): set issuer to %q if that is the provider you mean",
			mismatch.Provided, mismatch.Discovered, mismatch.Discovered)}
	}
	if err != nil {
		return err
	}
	var meta struct {
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return &configError{fmt.Sprintf("discovery document of %s is malformed: %v", p.cfg.Issuer, err)}
	}
	if err := checkHTTPURL(meta.JWKSURL); err != nil {
		return &configError{fmt.Sprintf("discovery document of %s: jwks_uri: %v", p.cfg.Issuer, err)}
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
	keys := newRemoteKeys(meta.JWKSURL, p.client, p.opts)
	// The issuer counts as reachable once its keys are too.
	if err := keys.refresh(attemptCtx); err != nil {
		return err
	}
	p.keys.Store(keys)
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
		var ce *configError
		if errors.As(cause, &ce) {
			return Identity{}, newError(CodeIssuerUnavailable, nil, "issuer "+p.cfg.Issuer+" is misconfigured: "+ce.msg)
		}
		return Identity{}, newError(CodeIssuerUnavailable, cause, unreachable("issuer", p.cfg.Issuer, cause)+" to verify the token")
	}
	if hint := accessTokenHint(raw); hint != "" {
		return Identity{}, newError(CodeTokenInvalid, nil, "token is an OAuth access token ("+hint+"), not an OpenID Connect ID token: log in with the id_token of the provider's token response")
	}
	probe := &fetchProbe{}
	tok, err := v.Verify(context.WithValue(ctx, fetchProbeKey{}, probe), raw)
	if err != nil {
		if probe.err != nil {
			return Identity{}, newError(CodeIssuerUnavailable, probe.err, unreachable("keys of issuer", p.cfg.Issuer, probe.err)+" to verify the token")
		}
		if probe.unknown != nil {
			return Identity{}, newError(CodeTokenInvalid, err, unknownKeyMessage("issuer "+p.cfg.Issuer, probe.unknown))
		}
		return Identity{}, newError(CodeTokenInvalid, err, "token signature or format is invalid")
	}
	claims := jwt.MapClaims{}
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, newError(CodeTokenInvalid, err, "token claims are malformed")
	}
	return p.claims.check(claims)
}

// health reports the provider's state.
func (p *oidcProvider) health() Health {
	h := Health{Name: p.cfg.name(), Issuer: p.cfg.Issuer, Kind: "oidc"}
	if k := p.keys.Load(); k != nil {
		h.Discovered = true
		kh := k.health()
		h.Keys, h.LastKeyRefresh, h.LastErrorAt = kh.keys, kh.lastSuccess, kh.lastErrAt
		if kh.lastErr != nil {
			h.LastError = kh.lastErr.Error()
		}
	}
	if e := p.lastErr.Load(); e != nil && !h.Discovered {
		h.LastError = (*e).Error()
	}
	switch {
	case !h.Discovered && p.misconfigured.Load():
		h.State = StateMisconfigured
	case !h.Discovered:
		h.State = StateUnreachable
		select {
		case <-p.attempted:
		default:
			h.State = StateDiscovering
		}
	case h.LastError != "":
		h.State = StateDegraded
	default:
		h.State = StateReady
	}
	return h
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
	err     error            // an *unavailableError from the key set
	unknown *unknownKeyError // no published key fits the token
}

func (k oidcKeySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	if err := verifySignature(ctx, k.parser, k.keys, raw, jwt.MapClaims{}); err != nil {
		var unavailable *unavailableError
		var unknown *unknownKeyError
		if probe, ok := ctx.Value(fetchProbeKey{}).(*fetchProbe); ok {
			// go-oidc keeps only the text of this error: the probe
			// carries what the refusal must say.
			switch {
			case errors.As(err, &unavailable):
				probe.err = err
			case errors.As(err, &unknown):
				probe.unknown = unknown
			}
		}
		return nil, err
	}
	// The parse above has checked that raw is three base64url segments.
	_, rest, _ := strings.Cut(raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	return base64.RawURLEncoding.DecodeString(payload)
}
