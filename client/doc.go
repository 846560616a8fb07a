// Package client is certmesh's client SDK. It logs in at a controller with
// a token and a fresh key, keeps the session's certificate fresh, dials
// routers with it, and reports what happens to the connection and the
// session as events, each with a reason an application can act on.
// docs/writing-a-client.md walks through it, with the events an
// application sees for rotation, revocation, removal of access, the loss
// of a router and the loss of the controllers.
//
// The pieces:
//
//   - Login, RotateSession and Logout are the controller API calls
//     (package api); Admin makes the admin ones (revocations, status) with
//     the admin certificate. Controller calls are hedged: each attempt is
//     bounded by Config.AttemptTimeout, the next controller is asked after
//     Config.HedgeAfter, and one that did not answer is asked last for a
//     while, so a controller that accepts connections and never answers
//     costs one attempt, not every call. A refusal is an *APIError.
//   - Session is what a login yields: the key, the chain the client
//     presents, the root, the session id and expiries. SaveDir and LoadDir
//     keep it in the files `certmesh login` writes.
//   - Client runs one session from New to Close, as go-spiffe's
//     workloadapi.NewX509Source does: it rotates the certificate before it
//     expires (Config.RotateAt or Config.RenewBefore), and, if Config.Token
//     is set, before the session's end extends a session bound to its token
//     with a fresh one (same id, certificate and connections) or else logs
//     in again. It offers Connect (one connection, kept up), Dial,
//     DialContext and HTTPClient. Subscribe delivers events on a goroutine
//     per subscriber, in order: a slow subscriber never stalls rotation.
//     After Close every method returns ErrClosed and the connections it
//     made are closed.
//
// Services. A router chooses the service a connection reaches by its TLS
// SNI, <service>.svc.<trust-domain>, and the replicated policies decide
// whether the session may reach it. Config.ForService names one service
// for every dial (Connect, Dial); DialContext, and so HTTPClient, take it
// from the address instead: a host <service>.svc.<trust-domain> in the
// session's trust domain dials that service through the configured
// routers, so an http.Client reaches https://echo.svc.certmesh/ by name
// (the https is the router's TLS, verified under the service's name; the
// port is not used). Any other host gets the config's choice. A refusal
// of access (IsAccessDenied) leaves the session as it was; a live
// connection an admin's change took access from is Connect's
// Disconnected(ReasonAccessRemoved), and Connect retries with backoff
// until access is given back.
//
// How the client knows. A router judges a client's certificate after the
// TLS 1.3 handshake, and refuses with an alert; every connection reads
// ahead once, so that the refusal reaches the application as a
// *RefusedError (with the alert, from Read and Write alike, whichever the
// protocol does first) and Connected is reported only once the router has
// admitted the client. A refusal of access (access_denied,
// unrecognized_name) says nothing of the session. A refusal of the
// certificate, or a connection closed without a word (after a revocation
// or a removal of access, a router closes live connections without an
// alert), is put to the controllers: GET /v1/sessions/current, a read.
// Only a controller decides that a session is over, and one authoritative
// answer is enough (api.CodeSessionRevoked, api.CodeSessionExpired); a
// controller that cannot be reached leaves the question open, never
// answers "valid". A router's word alone never ends a session: a node
// with the gossip key and no controller key could lie. When the session
// holds, Connect redials at once and the router's answer tells the rest:
// a refusal of access is ReasonAccessRemoved, anything else
// ReasonRouterLost.
//
// Time and randomness are injected (Config.Clock, Config.Rand), so the
// refresh schedule is testable without waiting.
package client
