package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/certmesh/certmesh/pki"
)

// MaxTokenBytes caps the tokens Verify looks at. ID tokens are typically
// 1-2 KiB; the API's body limit is 64 KiB.
const MaxTokenBytes = 16 << 10

// Identity is who a verified token says its bearer is.
type Identity struct {
	// ID is the certmesh identity (the CN of the client's certificates, the
	// identity of its session, what an identity revocation names): Subject,
	// prefixed with Namespace and a colon when Namespace is set. Valid UTF-8,
	// at most pki.MaxIdentityLen bytes.
	ID string
	// Subject is the value of the identity claim.
	Subject string
	// Namespace is the identity namespace of the entry that verified the
	// token (see Config): empty when the controller has a single entry
	// that sets none.
	Namespace string
	// Issuer is the token's iss.
	Issuer string
	// Method is "oidc" or "jwt:<signer name>".
	Method string
	// Expiry is the token's exp.
	Expiry time.Time
	// Roles are the values of the entry's roles_claim, as the token gave
	// them (nil without a roles_claim or without the claim).
	Roles []string
}

// provider verifies the tokens of one issuer. Implementations are safe for
// concurrent use and return *Error only.
type provider interface {
	verify(ctx context.Context, raw string) (Identity, *Error)
}

// Verifier verifies tokens for every configured issuer. It is safe for
// concurrent use.
type Verifier struct {
	providers map[string]provider // by issuer; read-only after New
	oidc      []*oidcProvider     // also in providers; for WaitReady and Health
	jwt       []*jwtProvider      // also in providers; for Health
}

// New builds a verifier for cfg. It fails on an invalid config or an
// unreadable keys_file or ca_file, never because an issuer is unreachable:
// OIDC discovery runs in the background, retried with backoff until it
// succeeds, and key sets are refreshed when they go stale, until ctx ends
// (cancel ctx to stop those goroutines when the verifier is no longer
// needed).
func New(ctx context.Context, cfg Config, opts Options) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	oidcNS, jwtNS, err := cfg.namespaces()
	if err != nil {
		return nil, err
	}
	v := &Verifier{providers: make(map[string]provider)}
	// JWT signers first: they can fail, and nothing has started yet.
	for i, c := range cfg.JWT {
		p, err := newJWTProvider(c, jwtNS[i], opts)
		if err != nil {
			return nil, fmt.Errorf("auth: auth.jwt[%d]: %w", i, err)
		}
		v.providers[c.Issuer] = p
		v.jwt = append(v.jwt, p)
	}
	// Then every OIDC issuer's client, before any discovery starts.
	clients := make([]*http.Client, len(cfg.OIDC))
	for i, c := range cfg.OIDC {
		if clients[i], err = httpClientFor(c.CAFile, opts); err != nil {
			return nil, fmt.Errorf("auth: auth.oidc[%d]: %w", i, err)
		}
	}
	// Nothing can fail from here on: start the background work.
	for _, p := range v.jwt {
		if r, ok := p.keys.(*remoteKeys); ok {
			go r.refreshLoop(ctx)
		}
	}
	for i, c := range cfg.OIDC {
		p := newOIDCProvider(ctx, c, oidcNS[i], clients[i], opts)
		v.providers[c.Issuer] = p
		v.oidc = append(v.oidc, p)
	}
	return v, nil
}

// Verify verifies rawToken and returns the identity it proves. Every error is
// an *Error.
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Identity, error) {
	id, err := v.verify(ctx, strings.TrimSpace(rawToken))
	if err != nil {
		return Identity{}, err
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (Identity, *Error) {
	if len(raw) > MaxTokenBytes {
		return Identity{}, newError(CodeTokenInvalid, nil, fmt.Sprintf("token is larger than %d bytes", MaxTokenBytes))
	}
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		if strings.Count(raw, ".") != 2 {
			return Identity{}, newError(CodeTokenInvalid, err, "token is not a JWT (an opaque OAuth access token?): log in with an OpenID Connect ID token (the id_token of the provider's token response) or a JWT of a configured signer")
		}
		return Identity{}, newError(CodeTokenInvalid, err, "token is not a well-formed JWT")
	}
	p, ok := v.providers[iss]
	if !ok {
		return Identity{}, newError(CodeIssuerUnknown, nil, fmt.Sprintf("issuer %.100q is not trusted", iss))
	}
	return p.verify(ctx, raw)
}

// WaitReady blocks until every OIDC issuer has been discovered, or ctx ends.
func (v *Verifier) WaitReady(ctx context.Context) error {
	for _, p := range v.oidc {
		select {
		case <-p.ready:
		case <-ctx.Done():
			return fmt.Errorf("auth: waiting for issuer %s: %w", p.cfg.Issuer, ctx.Err())
		}
	}
	return nil
}

// missingClaim explains that the identity claim is absent from a token (or
// not a non-empty string), listing the names of the claims it has (never
// their values), so that the operator can pick one or ask the provider to
// add it.
func (c claimChecker) missingClaim(claims jwt.MapClaims, present bool) string {
	kind := "token"
	if c.method == "oidc" {
		kind = "ID token"
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > 30 {
		names = append(names[:30], "...")
	}
	if present {
		return fmt.Sprintf("the %s's claim %q (identity_claim) is not a non-empty string", kind, c.identityClaim)
	}
	msg := fmt.Sprintf("the %s has no claim %q (identity_claim); it has %s", kind, c.identityClaim, strings.Join(names, ", "))
	if c.method == "oidc" {
		msg += ": ask the provider to put it in the ID token (a scope such as email or profile, or a claim mapping), or set identity_claim to one it has"
	}
	return msg
}

// accessTokenHint returns why raw looks like an OAuth access token rather
// than an ID token, or "" if it does not. Only markers that no ID token
// carries count: a JWT access token's header typ (RFC 9068, section 2.1),
// Cognito's token_use and Keycloak's typ claim. The token is not verified
// here; this only picks the message of a refusal.
func accessTokenHint(raw string) string {
	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(raw, claims)
	if err != nil {
		return ""
	}
	if typ, _ := tok.Header["typ"].(string); strings.EqualFold(typ, "at+jwt") || strings.EqualFold(typ, "application/at+jwt") {
		return "header typ " + typ
	}
	if use, _ := claims["token_use"].(string); use == "access" {
		return "token_use access"
	}
	if typ, _ := claims["typ"].(string); strings.EqualFold(typ, "Bearer") {
		return "claim typ Bearer"
	}
	return ""
}

// unverifiedIssuer reads the iss claim of a compact JWS without verifying
// anything, to pick the verifier. Nothing else is trusted from this parse.
func unverifiedIssuer(raw string) (string, error) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return "", err
	}
	iss, err := claims.GetIssuer()
	if err != nil {
		return "", err
	}
	return iss, nil
}

// claimChecker checks the claims of a token whose signature has been
// verified. It is shared by both kinds of issuer so that they refuse the same
// tokens with the same codes.
type claimChecker struct {
	issuer, audience, identityClaim, method string
	namespace                               string         // prefixes identities; empty: none
	rolesClaim                              string         // empty: no roles (roles.go)
	validator                               *jwt.Validator // exp (required) and nbf, with leeway
}

func newClaimChecker(issuer, audience, identityClaim, method, namespace string, opts Options) claimChecker {
	if identityClaim == "" {
		identityClaim = DefaultIdentityClaim
	}
	return claimChecker{
		issuer:        issuer,
		audience:      audience,
		identityClaim: identityClaim,
		method:        method,
		namespace:     namespace,
		validator: jwt.NewValidator(
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(opts.Leeway),
			jwt.WithTimeFunc(opts.Now),
			jwt.WithIssuer(issuer),
		),
	}
}

// check applies, in order: audience, then expiry, then not-before, then the
// identity claim.
func (c claimChecker) check(claims jwt.MapClaims) (Identity, *Error) {
	aud, err := claims.GetAudience()
	if err != nil {
		return Identity{}, newError(CodeTokenInvalid, err, "token aud claim is malformed")
	}
	if !slices.Contains(aud, c.audience) {
		msg := fmt.Sprintf("token audience %.200q does not include %q", []string(aud), c.audience)
		_, scp := claims["scp"]
		_, scope := claims["scope"]
		if c.method == "oidc" && (scp || scope) {
			// An ID token names the client; a token for an API that
			// carries scopes is an OAuth access token.
			msg += "; it carries scopes, so it looks like an OAuth access token: log in with the ID token (the id_token of the provider's token response), whose audience is the client id"
		}
		return Identity{}, newError(CodeAudienceMismatch, nil, msg)
	}
	if err := c.validator.Validate(claims); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			exp, _ := claims.GetExpirationTime()
			return Identity{}, newError(CodeTokenExpired, nil, "token expired at "+exp.UTC().Format(time.RFC3339))
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			nbf, _ := claims.GetNotBefore()
			return Identity{}, newError(CodeTokenNotYetValid, nil, "token is not valid before "+nbf.UTC().Format(time.RFC3339))
		default:
			return Identity{}, newError(CodeTokenInvalid, err, "token claims are invalid")
		}
	}
	raw, present := claims[c.identityClaim]
	sub, _ := raw.(string)
	if sub == "" {
		return Identity{}, newError(CodeTokenInvalid, nil, c.missingClaim(claims, present))
	}
	if len(sub) > pki.MaxIdentityLen || !utf8.ValidString(sub) {
		return Identity{}, newError(CodeTokenInvalid, nil, fmt.Sprintf("token claim %q is not UTF-8 of at most %d bytes", c.identityClaim, pki.MaxIdentityLen))
	}
	id := sub
	if c.namespace != "" {
		id = c.namespace + ":" + sub
		if len(id) > pki.MaxIdentityLen {
			return Identity{}, newError(CodeTokenInvalid, nil, fmt.Sprintf("identity %s:<%s> is longer than %d bytes", c.namespace, c.identityClaim, pki.MaxIdentityLen))
		}
	}
	roles, e := c.roles(claims)
	if e != nil {
		return Identity{}, e
	}
	exp, _ := claims.GetExpirationTime() // present: the validator requires it
	return Identity{ID: id, Subject: sub, Namespace: c.namespace, Issuer: c.issuer, Method: c.method, Expiry: exp.Time, Roles: roles}, nil
}
