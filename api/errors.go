package api

import "net/http"

// ErrorBody is the body of every error answer: {"error": "<sentence>",
// "code": "<word>"}.
type ErrorBody struct {
	Error string `json:"error"` // one sentence for a person
	Code  Code   `json:"code"`  // one word for a program
}

// Code is the machine-readable reason of an error answer, the `code` of its
// ErrorBody. One code space for the whole API: the auth package's codes
// (why a login token was refused) are these too.
type Code string

// The codes, with the status they are answered with (Code.HTTPStatus).
const (
	CodeBadRequest   Code = "bad_request"        // 400: malformed JSON, missing or conflicting fields
	CodeBodyTooLarge Code = "body_too_large"     // 413: a body over MaxBodyBytes
	CodeRateLimited  Code = "rate_limited"       // 429: over api.rate_limit from this source address
	CodeClockSkew    Code = "clock_skew"         // 503: the controller's clock is off; it refuses writes
	CodeCSRInvalid   Code = "csr_invalid"        // 400: not one PEM or DER certificate request, a bad self-signature, or a key other than ECDSA P-256
	CodeForbidden    Code = "forbidden"          // 403; 401 when no client certificate was presented at all
	CodeNotFound     Code = "not_found"          // 404: no such route
	CodeMethod       Code = "method_not_allowed" // 405, with an Allow header
	CodeUnavailable  Code = "unavailable"        // 503: retry at another controller
	CodeInternal     Code = "internal"           // 500: a failure of the controller's own; retry at another

	// Why a session certificate was refused on a session route
	// (PathCurrentSession, PathCertificates): the controller's
	// authoritative word that the session is over. Other refusals there
	// stay CodeForbidden, among them a session this controller has not
	// heard of yet, which another controller may know.
	CodeSessionRevoked Code = "session_revoked" // 403: the session, its identity, its certificate or its issuing controller was revoked
	CodeSessionExpired Code = "session_expired" // 403: the session reached its end (session.max_lifetime); log in again

	// Why a login token was refused (the auth package's verifiers).
	CodeTokenExpired      Code = "token_expired"       // 401: exp is in the past, beyond the leeway
	CodeTokenNotYetValid  Code = "token_not_yet_valid" // 401: nbf is in the future, beyond the leeway
	CodeTokenInvalid      Code = "token_invalid"       // 401: garbage, bad signature, unknown key, alg none or not allowed, missing claims
	CodeAudienceMismatch  Code = "audience_mismatch"   // 401: aud does not hold the configured audience
	CodeIssuerUnknown     Code = "issuer_unknown"      // 401: iss is not a configured issuer
	CodeIssuerUnavailable Code = "issuer_unavailable"  // 503: the issuer's discovery or keys cannot be fetched; the client may retry
)

// HTTPStatus returns the status an error with code c is answered with, as
// listed beside the codes: for a token's code, 503 for issuer_unavailable
// and 401 otherwise. CodeForbidden is 403, though a route that needs a
// client certificate answers 401 when none was presented; the session
// codes are 403 too, so a client that knows only CodeForbidden still reads
// them as a refusal; an unknown code
// is 500.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeBadRequest, CodeCSRInvalid:
		return http.StatusBadRequest
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeClockSkew, CodeUnavailable, CodeIssuerUnavailable:
		return http.StatusServiceUnavailable
	case CodeForbidden, CodeSessionRevoked, CodeSessionExpired:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeTokenExpired, CodeTokenNotYetValid, CodeTokenInvalid, CodeAudienceMismatch, CodeIssuerUnknown:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}
