package auth

import "github.com/certmesh/certmesh/api"

// Code is the machine-readable reason a token was refused: the `code` of
// the API's error body. The API has one code space, defined in package api;
// these are the codes a Verify error can carry, and api.Code.HTTPStatus is
// the status they are answered with (503 for issuer_unavailable, which the
// client may retry; 401 otherwise).
type Code = api.Code

// The codes a Verify error can carry.
const (
	CodeTokenExpired      = api.CodeTokenExpired      // exp is in the past, beyond the leeway
	CodeTokenNotYetValid  = api.CodeTokenNotYetValid  // nbf is in the future, beyond the leeway
	CodeTokenInvalid      = api.CodeTokenInvalid      // garbage, bad signature, unknown key, alg none or not allowed, missing claims
	CodeAudienceMismatch  = api.CodeAudienceMismatch  // aud does not hold the configured audience
	CodeIssuerUnknown     = api.CodeIssuerUnknown     // iss is not a configured issuer
	CodeIssuerUnavailable = api.CodeIssuerUnavailable // the issuer's discovery or keys cannot be fetched
)

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
