// Package auth owns the verification of the bearer tokens that clients
// present to `POST /v1/sessions` (docs/deploy.md): OpenID Connect ID
// tokens, verified with github.com/coreos/go-oidc/v3 (discovery, ID token
// parsing, algorithm and issuer checks), and JWTs from external signers,
// verified with github.com/golang-jwt/jwt/v5 against PEM public keys or a
// JWKS URL.
//
// Both kinds share one JWKS cache (remoteKeys): the key set is fetched at
// discovery (OIDC) or first use (jwks_url), again when a token names a kid
// that the cache lacks, so a key rotated in at the issuer is picked up
// without a restart (misses refetch at most once per
// Options.JWKSRefreshInterval, so made-up kids cannot turn into a flood of
// fetches), and again before a lookup once the set is older than the
// answer's Cache-Control max-age clamped to [Options.KeyRefreshMin,
// KeyRefreshMax] (1m and 15m), so a key the issuer withdrew is refused
// within KeyRefreshMax on every controller the issuer answers. While the
// latest fetch failed, cached keys still verify and a kid not cached is
// issuer_unavailable (503), never token_invalid (401): a client takes 401
// as final. go-oidc's RemoteKeySet is deliberately not used: a lookup that
// starts just as another fetch completes can be handed that fetch's stale
// result (its "inflight" is still set), which refuses the first tokens of a
// freshly rotated key; this package's test of rotation caught it.
//
// A token is routed to its verifier by its unverified iss claim, then its
// signature is verified, then its claims: aud must hold the configured
// audience, exp is required, exp and nbf are checked with a small leeway,
// and the identity claim (default sub) must be a non-empty string. Every
// failure is an *Error whose Code is one of the API's error codes, so the
// HTTP layer never has to interpret error strings.
//
// Invariants:
//   - The algorithm is never taken on the token's word: a key is only tried
//     for a token whose alg fits the key's type (ES256 for a P-256 key,
//     RS*/PS* for RSA of at least 2048 bits, EdDSA for Ed25519, or the JWK's
//     own alg), and OIDC tokens must also use an algorithm the issuer
//     advertises. "none" and HMAC are never accepted, and symmetric JWKs are
//     ignored, so a public key can never be used as an HMAC secret.
//   - An OIDC issuer that cannot be reached when New runs does not fail New:
//     its discovery is retried in the background with exponential backoff
//     until the context given to New ends, and its tokens are refused with
//     issuer_unavailable (HTTP 503) until discovery and a first fetch of its
//     key set succeed. The same code
//     is returned when a token names a key the verifier has not cached and
//     the key set cannot be fetched.
//   - A discovery document whose issuer differs from the config (a
//     trailing slash) is a misconfiguration, not an outage:
//     Verifier.Misconfigured names both strings, and the controller is not
//     ready. Verifier.Health reports every issuer's state for /v1/status
//     and metrics.
//   - An OIDC entry refuses tokens marked as OAuth access tokens (RFC 9068
//     typ at+jwt, token_use access, typ Bearer), says so when a token for
//     another audience carries scopes, and a refusal for a missing
//     identity claim lists the claims the token has.
//   - Time comes from Options.Now, so tests control expiry precisely.
//
// Sources: OpenID Connect Core 1.0 (ID token validation, section 3.1.3.7),
// RFC 7519 (JWT claims), RFC 7517/7518 (JWK, JWA), RFC 8725 (JWT best
// current practices: algorithm pinning, explicit typing of keys).
package auth
