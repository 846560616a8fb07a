package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
)

// ErrClosed is returned by every method of a Client after Close.
var ErrClosed = errors.New("client: closed")

// ErrStop, returned by Connect's fn, ends Connect without reconnecting.
var ErrStop = errors.New("client: stop")

// The session's end, as errors.Is tells it from the error of Connect,
// Rotate, Dial and Err once it happened: ErrSessionEnded matches either,
// ErrRevoked and ErrExpired one each. The error is a *SessionEndedError
// that also wraps the controller's answer (an *APIError).
var (
	ErrSessionEnded = errors.New("client: session ended")
	ErrRevoked      = errors.New("client: session revoked")
	ErrExpired      = errors.New("client: session expired")
)

// SessionEndedError says why a session is over: Reason is ReasonRevoked or
// ReasonExpired, Cause what said so (a controller's *APIError, or the
// local clock past the session's end).
type SessionEndedError struct {
	Reason Reason
	Cause  error
}

func (e *SessionEndedError) Error() string {
	return fmt.Sprintf("client: session %s: %v", e.Reason, e.Cause)
}

func (e *SessionEndedError) Unwrap() error { return e.Cause }

// Is matches ErrSessionEnded, and ErrRevoked or ErrExpired by Reason.
func (e *SessionEndedError) Is(target error) bool {
	switch target {
	case ErrSessionEnded:
		return true
	case ErrRevoked:
		return e.Reason == ReasonRevoked
	case ErrExpired:
		return e.Reason == ReasonExpired
	}
	return false
}

// RefusedError is a router refusing a connection with a TLS alert: in the
// handshake (a chain it does not accept) or right after it (the
// certificate's session, or access to the service, as the replicated state
// has it). It wraps crypto/tls's error.
type RefusedError struct {
	Router string
	Alert  tls.AlertError
	Err    error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("client: router %s refused the connection: %v", e.Router, e.Alert)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// AccessDenied reports whether the router refused access to the service
// (access_denied, unrecognized_name) rather than the certificate: the
// session may well be valid.
func (e *RefusedError) AccessDenied() bool { return accessAlert(e.Alert) }

// TLS alerts (RFC 8446 section 6.2) a router refuses with.
const (
	alertBadCertificate         tls.AlertError = 42
	alertUnsupportedCertificate tls.AlertError = 43
	alertCertificateRevoked     tls.AlertError = 44
	alertCertificateExpired     tls.AlertError = 45
	alertCertificateUnknown     tls.AlertError = 46
	alertUnknownCA              tls.AlertError = 48
	alertAccessDenied           tls.AlertError = 49
	alertUnrecognizedName       tls.AlertError = 112
	alertCertificateRequired    tls.AlertError = 116
)

func accessAlert(a tls.AlertError) bool {
	return a == alertAccessDenied || a == alertUnrecognizedName
}

func refusalAlert(a tls.AlertError) bool {
	switch a {
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked, alertCertificateExpired,
		alertCertificateUnknown, alertUnknownCA, alertCertificateRequired:
		return true
	}
	return accessAlert(a)
}

// alertOf returns the TLS alert the peer sent, if err is one. crypto/tls
// reports a received alert as a *net.OpError with Op "remote error" whose
// Err is its unexported alert type, a uint8: the number is read from it
// (not its text, which is for people and may change).
func alertOf(err error) (tls.AlertError, bool) {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return ae, true
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	v := reflect.ValueOf(oe.Err)
	if v.Kind() != reflect.Uint8 || v.Type().PkgPath() != "crypto/tls" {
		return 0, false
	}
	return tls.AlertError(v.Uint()), true
}

// IsRefused reports whether err is a router refusing a connection: a
// *RefusedError, or crypto/tls's error for a refusal alert
// (bad_certificate, certificate_revoked, certificate_expired, unknown_ca,
// access_denied, unrecognized_name and the like) from a plain TLS dial.
func IsRefused(err error) bool {
	var re *RefusedError
	if errors.As(err, &re) {
		return true
	}
	a, ok := alertOf(err)
	return ok && refusalAlert(a)
}
