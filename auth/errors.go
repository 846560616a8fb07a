package auth

import "net/http"

// Code is the machine-readable reason a token was refused. The values are the
// `code` field of the API's error bodies (SPEC.md section 3).
type Code string

// The codes a Verify error can carry.
const (
	CodeTokenExpired      Code = "token_expired"       // exp is in the past, beyond the leeway
	CodeTokenNotYetValid  Code = "token_not_yet_valid" // nbf is in the future, beyond the leeway
	CodeTokenInvalid      Code = "token_invalid"       // garbage, bad signature, unknown key, alg none or not allowed, missing claims
	CodeAudienceMismatch  Code = "audience_mismatch"   // aud does not hold the configured audience
	CodeIssuerUnknown     Code = "issuer_unknown"      // iss is not a configured issuer
	CodeIssuerUnavailable Code = "issuer_unavailable"  // the issuer's discovery or keys cannot be fetched
)

// HTTPStatus returns the status the API answers with for c: 503 for
// issuer_unavailable (the client may retry), 401 otherwise.
func (c Code) HTTPStatus() int {
	if c == CodeIssuerUnavailable {
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}

// Error is the error Verify returns.
type Error struct {
	Code Code
	// Msg is one sentence fit for the API's `error` field: it says what is
	// wrong with the token, never anything secret.
	Msg string
	// Err is the underlying cause, if any, for logs.
	Err error
}

func (e *Error) Error() string {
	s := "auth: " + string(e.Code) + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func newError(code Code, err error, msg string) *Error {
	return &Error{Code: code, Msg: msg, Err: err}
}
