package auth

import (
	"context"
	"errors"
	"fmt"
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
	oidc      []*oidcProvider     // also in providers; for WaitReady
}

// New builds a verifier for cfg. It fails on an invalid config or an
// unreadable keys_file, never because an issuer is unreachable: OIDC
// discovery runs in the background, retried with backoff until it succeeds
// or ctx ends (cancel ctx to stop those goroutines when the verifier is no
// longer needed).
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
	}
	for i, c := range cfg.OIDC {
		p := newOIDCProvider(ctx, c, oidcNS[i], opts)
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
		return Identity{}, newError(CodeAudienceMismatch, nil, fmt.Sprintf("token audience %.200q does not include %q", []string(aud), c.audience))
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
	sub, _ := claims[c.identityClaim].(string)
	if sub == "" {
		return Identity{}, newError(CodeTokenInvalid, nil, fmt.Sprintf("token claim %q is missing or not a string", c.identityClaim))
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
