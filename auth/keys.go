package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits on key material read from files and the network.
const (
	maxKeysFileBytes = 1 << 20 // a keys_file
	maxJWKSBytes     = 1 << 20 // a fetched JWKS
	minRSABits       = 2048    // RFC 7518 section 3.3
)

// errUnknownKey means no key fits a token's kid and alg; the lookups
// return it as an *unknownKeyError, which names them.
var errUnknownKey = errors.New("auth: no key fits the token's kid and alg")

// unknownKeyError is errUnknownKey for one token: the kid and alg its
// header names (untrusted input, quoted and shortened where shown).
type unknownKeyError struct{ kid, alg string }

func (e *unknownKeyError) Error() string { return errUnknownKey.Error() + ": " + e.describe() }

func (e *unknownKeyError) Is(target error) bool { return target == errUnknownKey }

// describe is `kid "k1", alg ES256`, or `no kid, alg ES256`.
func (e *unknownKeyError) describe() string {
	kid := "no kid"
	if e.kid != "" {
		k := e.kid
		if len(k) > 64 {
			k = k[:64] + "..."
		}
		kid = fmt.Sprintf("kid %q", k)
	}
	return kid + ", alg " + e.alg
}

// unknownKeyMessage is the refusal of a token that no key of who fits:
// naming the key lets the operator compare it with the provider's jwks_uri.
func unknownKeyMessage(who string, e *unknownKeyError) string {
	return "no key of " + who + " fits the token (" + e.describe() + "): a key the provider withdrew or never published, or a token from another provider with the same iss"
}

// unavailableError means the key set could not be fetched.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "auth: key set unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// publicKey is a verification key and the algorithms it may verify.
type publicKey struct {
	kid  string // "" when the source names none
	key  crypto.PublicKey
	algs []string
}

// algsForKey returns the JWS algorithms that fit a key's type, which pins
// the algorithm: a token's alg must be one of these for the key to be tried.
func algsForKey(key crypto.PublicKey) ([]string, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("ECDSA curve %s is not supported", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("key type %T is not supported", key)
}

func newPublicKey(kid string, key crypto.PublicKey, alg string) (publicKey, error) {
	algs, err := algsForKey(key)
	if err != nil {
		return publicKey{}, err
	}
	if alg != "" {
		if !slices.Contains(algs, alg) {
			return publicKey{}, fmt.Errorf("alg %q does not fit the key (%v)", alg, algs)
		}
		algs = []string{alg}
	}
	return publicKey{kid: kid, key: key, algs: algs}, nil
}

// candidates returns the keys that may verify a token with kid and alg: the
// alg must fit the key, and the kid must match unless the key has none.
func candidates(keys []publicKey, kid, alg string) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	for _, k := range keys {
		if slices.Contains(k.algs, alg) && (kid == "" || k.kid == "" || k.kid == kid) {
			out = append(out, k.key)
		}
	}
	return out
}

// parsePEMKeys reads PEM public keys: "PUBLIC KEY" (PKIX), "RSA PUBLIC KEY"
// (PKCS #1) or "CERTIFICATE" (its public key) blocks. An optional "kid" PEM
// header names a key; an optional "alg" header narrows its algorithms.
func parsePEMKeys(data []byte) ([]publicKey, error) {
	var keys []publicKey
	rest := bytes.TrimSpace(data)
	for n := 1; len(rest) > 0; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("data outside PEM blocks after block %d", n-1)
		}
		rest = bytes.TrimSpace(rest)
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("PEM block %d is %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k, err := newPublicKey(block.Headers["kid"], key, block.Headers["alg"])
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key")
	}
	return keys, nil
}

// jwkJSON is one JSON Web Key (RFC 7517, RFC 7518 section 6, RFC 8037).
type jwkJSON struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS reads a JWK Set. Keys that are not for signatures, symmetric
// ("oct") keys and keys of unsupported types are skipped, as are malformed
// ones, so that one odd key does not disable an issuer; a set with no usable
// key is an error.
func parseJWKS(data []byte) ([]publicKey, error) {
	var set struct {
		Keys []jwkJSON `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("malformed JWKS: %w", err)
	}
	var keys []publicKey
	var firstErr error
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		pub, err := j.publicKey()
		if err == nil {
			var k publicKey
			if k, err = newPublicKey(j.Kid, pub, j.Alg); err == nil {
				keys = append(keys, k)
				continue
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err)
		}
	}
	if len(keys) == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("JWKS has no usable signature key: %w", firstErr)
		}
		return nil, errors.New("JWKS has no usable signature key")
	}
	return keys, nil
}

func (j jwkJSON) publicKey() (crypto.PublicKey, error) {
	b64 := base64.RawURLEncoding.Strict()
	switch j.Kty {
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("EC curve %q is not supported", j.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("EC coordinates are not %d bytes of base64url", size)
		}
		return ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
	case "RSA":
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("RSA n or e is not base64url of a sane size")
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() < 3 || exp.Int64() > 1<<31-1 {
			return nil, errors.New("RSA exponent is out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("OKP curve %q is not supported", j.Crv)
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 x is not 32 bytes of base64url")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("key type %q is not supported", j.Kty)
}

// keySource finds the keys that may verify a token.
type keySource interface {
	lookup(ctx context.Context, kid, alg string) ([]jwt.VerificationKey, error)
}

// staticKeys are keys from a keys_file.
type staticKeys []publicKey

func (s staticKeys) lookup(_ context.Context, kid, alg string) ([]jwt.VerificationKey, error) {
	if c := candidates(s, kid, alg); len(c) > 0 {
		return c, nil
	}
	return nil, &unknownKeyError{kid: kid, alg: alg}
}

// remoteKeys is a JWKS URL, fetched on first use (or at OIDC discovery),
// again whenever a token names a key that the cached set lacks (at most
// once per minInterval), and again before a lookup once the set is older
// than its refresh interval (the answer's Cache-Control max-age clamped to
// [refreshMin, refreshMax]), so that a key the issuer withdrew stops being
// trusted within refreshMax. A lookup that misses waits for the fetch it
// caused or joined and then looks at the keys that fetch stored, so a token
// of a key published just now is never checked against the set fetched
// just before.
//
// While the latest fetch failed, the cached keys stay trusted (an outage at
// the issuer does not refuse the tokens it signed before), but a key that
// is not cached is unavailable, never unknown: the answer is 503
// issuer_unavailable, not a 401 the client would take as final.
type remoteKeys struct {
	url                    string
	client                 *http.Client
	now                    func() time.Time
	minInterval            time.Duration
	refreshMin, refreshMax time.Duration

	// fetchMu is held for the whole of a fetch, so that concurrent misses
	// cause one fetch, while lookups of cached keys go on under mu.
	fetchMu sync.Mutex

	mu          sync.RWMutex
	keys        []publicKey // guarded by mu
	lastFetch   time.Time   // guarded by mu: when the last fetch ended
	lastErr     error       // guarded by mu: the last fetch's error, nil if it succeeded
	lastErrAt   time.Time   // guarded by mu: when a fetch last failed
	lastSuccess time.Time   // guarded by mu: when a fetch last succeeded
	nextRefresh time.Time   // guarded by mu: when the cached set goes stale
}

func newRemoteKeys(url string, client *http.Client, opts Options) *remoteKeys {
	return &remoteKeys{
		url:         url,
		client:      client,
		now:         opts.Now,
		minInterval: opts.JWKSRefreshInterval,
		refreshMin:  opts.KeyRefreshMin,
		refreshMax:  opts.KeyRefreshMax,
	}
}

func (r *remoteKeys) lookup(ctx context.Context, kid, alg string) ([]jwt.VerificationKey, error) {
	r.mu.RLock()
	keys, stale := r.keys, !r.now().Before(r.nextRefresh)
	r.mu.RUnlock()
	if !stale {
		if c := candidates(keys, kid, alg); len(c) > 0 {
			return c, nil
		}
	}

	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	// Another lookup may have fetched while this one waited.
	r.mu.RLock()
	keys, last, lastErr := r.keys, r.lastFetch, r.lastErr
	stale = !r.now().Before(r.nextRefresh)
	r.mu.RUnlock()
	if stale {
		// A failed refresh keeps the cached keys: fetchAndStore has
		// pushed nextRefresh on by refreshMin.
		if fresh, err := r.fetchAndStore(ctx); err == nil {
			keys, lastErr = fresh, nil
		} else {
			lastErr = err
		}
		last = r.now()
	}
	if c := candidates(keys, kid, alg); len(c) > 0 {
		return c, nil
	}
	if stale || (!last.IsZero() && r.now().Sub(last) < r.minInterval) {
		if lastErr != nil {
			return nil, asUnavailable(lastErr)
		}
		return nil, &unknownKeyError{kid: kid, alg: alg}
	}
	keys, err := r.fetchAndStore(ctx)
	if err != nil {
		return nil, err
	}
	if c := candidates(keys, kid, alg); len(c) > 0 {
		return c, nil
	}
	return nil, &unknownKeyError{kid: kid, alg: alg}
}

func asUnavailable(err error) error {
	var u *unavailableError
	if errors.As(err, &u) {
		return err
	}
	return &unavailableError{err}
}

// refresh fetches the key set now, whatever is cached.
func (r *remoteKeys) refresh(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	_, err := r.fetchAndStore(ctx)
	return err
}

// fetchAndStore fetches the key set and records the outcome; a failure is an
// *unavailableError. The caller holds fetchMu.
func (r *remoteKeys) fetchAndStore(ctx context.Context) ([]publicKey, error) {
	keys, maxAge, err := r.fetch(ctx)
	r.mu.Lock()
	now := r.now()
	r.lastFetch, r.lastErr = now, err
	if err == nil {
		r.keys, r.lastSuccess = keys, now
		r.nextRefresh = now.Add(min(max(maxAge, r.refreshMin), r.refreshMax)) // absent: refreshMax
	} else {
		r.lastErrAt = now
		r.nextRefresh = now.Add(r.refreshMin)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, &unavailableError{err}
	}
	return keys, nil
}

// refreshLoop refetches the key set each time it goes stale, until ctx
// ends, so that a controller that sees no logins still drops the keys its
// issuer withdrew and reports a current health (the last refresh). Lookups
// refresh a stale set themselves, so the bound holds whatever this loop's
// timing. A set never fetched (a jwks_url before its first use) is left
// alone.
func (r *remoteKeys) refreshLoop(ctx context.Context) {
	for {
		r.mu.RLock()
		next, fetched := r.nextRefresh, !r.lastFetch.IsZero()
		r.mu.RUnlock()
		wait := r.refreshMin
		if fetched {
			wait = max(next.Sub(r.now()), time.Second)
		}
		if !sleep(ctx, wait) {
			return
		}
		r.fetchMu.Lock()
		r.mu.RLock()
		stale := !r.lastFetch.IsZero() && !r.now().Before(r.nextRefresh)
		r.mu.RUnlock()
		if stale {
			_, _ = r.fetchAndStore(ctx) // a failure is recorded for Health
		}
		r.fetchMu.Unlock()
	}
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxAgeAbsent is maxAge's answer when the provider gives no max-age: more
// than any clamp's upper bound.
const maxAgeAbsent = 1<<63 - 1

// keyHealth is what a key set tells about its issuer's health.
type keyHealth struct {
	keys                   int
	lastSuccess, lastErrAt time.Time
	lastErr                error // of the latest fetch; nil if it succeeded
}

func (r *remoteKeys) health() keyHealth {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return keyHealth{keys: len(r.keys), lastSuccess: r.lastSuccess, lastErrAt: r.lastErrAt, lastErr: r.lastErr}
}

// fetch GETs the key set and returns it with the answer's Cache-Control
// max-age (see maxAge).
// It does not stop when the request that caused it is cancelled, since its
// result serves every request after it.
func (r *remoteKeys) fetch(ctx context.Context) ([]publicKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	// Fetches happen because a key is missing or the set is stale: ask
	// caches between here and the issuer for the current set.
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", r.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s", r.url, resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, 0, fmt.Errorf("GET %s: more than %d bytes", r.url, maxJWKSBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", r.url, err)
	}
	return keys, maxAge(resp.Header.Values("Cache-Control")), nil
}

// maxAge reads max-age from Cache-Control header values (RFC 9111 section
// 5.2.2.1): no-cache and no-store mean 0; an absent or malformed one means
// "no advice", maxAgeAbsent. The caller clamps it.
func maxAge(values []string) time.Duration {
	age := time.Duration(maxAgeAbsent)
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-cache", "no-store":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64)
				if err == nil && n > 0 && n < 1<<31 {
					age = time.Duration(n) * time.Second
				}
			}
		}
	}
	return age
}

// newTokenParser returns a parser that accepts only methods and checks no
// claim (claimChecker does that).
func newTokenParser(methods []string) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithoutClaimsValidation(),
		jwt.WithStrictDecoding(),
	)
}

// verifySignature checks the signature of raw with the keys of src that fit
// its kid and its alg (which parser has already limited) and decodes its
// claims into claims. An unreachable key set is an *unavailableError in the
// returned error's chain.
func verifySignature(ctx context.Context, parser *jwt.Parser, src keySource, raw string, claims jwt.MapClaims) error {
	_, err := parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		keys, err := src.lookup(ctx, kid, t.Method.Alg())
		if err != nil {
			return nil, err
		}
		return jwt.VerificationKeySet{Keys: keys}, nil
	})
	return err
}
