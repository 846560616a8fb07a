// Package auth owns the verification of the bearer tokens that clients
// present to `POST /v1/sessions` (docs/deploy.md): OpenID Connect ID
// tokens, verified with github.com/coreos/go-oidc/v3 (discovery, ID token
// parsing, algorithm and issuer checks), and JWTs from external signers,
// verified with github.com/golang-jwt/jwt/v5 against PEM public keys or a
// JWKS URL.
//
// Both kinds share one JWKS cache (remoteKeys): the key set is fetched at
// discovery (OIDC) or first use (jwks_url), and again when a token names a
// kid that the cache lacks, so a key rotated in at the issuer is picked up
// without a restart; misses refetch at most once per
// Options.JWKSRefreshInterval, so made-up kids cannot turn into a flood of
// fetches. go-oidc's RemoteKeySet is deliberately not used: a lookup that
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
//   - Time comes from Options.Now, so tests control expiry precisely.
//
// Sources: OpenID Connect Core 1.0 (ID token validation, section 3.1.3.7),
// RFC 7519 (JWT claims), RFC 7517/7518 (JWK, JWA), RFC 8725 (JWT best
// current practices: algorithm pinning, explicit typing of keys).
package auth
