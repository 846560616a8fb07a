// Package client is certmesh's client SDK: it logs in at a controller with
// a token and a fresh key (POST /v1/sessions), keeps the session's
// certificate fresh by rotating it at about two thirds of its lifetime
// (with jitter, retrying other controllers on failure), dials routers with
// the current certificate, reconnects with backoff and fails over to
// another router, and reports what happens to the connection as events
// (connected, rotated, disconnected, revoked) that an application can
// subscribe to (its --help).
//
// The pieces:
//
//   - Session is what a login yields: the key, the certificate chain the
//     client presents (leaf, then the issuing intermediate), the root, the
//     session id and expiries. SaveDir and LoadDir keep it in the files
//     `certmesh login` writes: key.pem (0600), cert.pem, ca.pem and
//     session.json.
//   - Login, RotateSession and Logout are the controller API calls; Admin
//     makes the admin ones (revocations, status) with the admin
//     certificate.
//   - Client runs one session: its refresh loop, Dial and Connect, and the
//     event subscriptions.
//
// A router judges a client certificate after the TLS 1.3 handshake is
// complete on the client's side, so a refusal shows on the first read as a
// certificate alert: certificate_revoked, certificate_expired or
// bad_certificate (IsRefused). When that happens, Connect asks a
// controller to rotate the certificate: a controller that refuses
// (401/403) means the session is over, and Connect reports it revoked;
// otherwise it reconnects with the new certificate.
//
// Time and randomness are injected (Config.Clock, Config.Rand), so the
// refresh schedule is testable without waiting.
package client
