// Package api is the controller and router HTTP API on the wire (package api): its routes, the JSON bodies of its requests and answers, and
// the error codes of its error bodies. It is the one definition that the
// controller (issuer), the router, the client SDK, the command line and the
// tests share, so a field name or a code cannot drift between them.
//
// It holds types and constants, and Operator, the handler of the operator
// endpoints (/healthz, /readyz, /metrics, /v1/status) that controllers and
// routers serve alike. It imports nothing but the standard library: the SDK depends on it without pulling in the controller's
// dependencies, and any package may import it.
//
// The wire is a contract with deployed clients: the JSON names here, the
// order of the fields (encoding/json writes them in declaration order) and
// the code values never change; new fields and codes are added.
package api

// MaxBodyBytes caps request bodies: a larger one is refused with 413
// CodeBodyTooLarge.
const MaxBodyBytes = 64 << 10

// Routes of the controller's API (HTTPS). PathStatus, PathHealthz,
// PathReadyz and PathMetrics are also served over plain HTTP on every
// node's metrics listener.
const (
	// PathSessions: POST logs in (LoginRequest → 201 SessionResponse); GET
	// ?identity=ID lists an identity's sessions (admin; SessionList).
	PathSessions = "/v1/sessions"
	// PathCurrentSession: DELETE logs out the session of the client's
	// certificate (mTLS; 204); GET tells whether it is still valid (mTLS;
	// 200 SessionInfo with the presented certificate alone in
	// Certificates, or 403 CodeSessionRevoked, CodeSessionExpired, or
	// CodeForbidden for a session not known here yet).
	PathCurrentSession = "/v1/sessions/current"
	// PathCertificates: POST rotates the client's certificate (mTLS;
	// RotationRequest → 201 SessionResponse).
	PathCertificates = "/v1/sessions/current/certificates"
	// PathSessionToken: POST presents a fresh login token for the session
	// of the client's certificate (mTLS; TokenRequest → 200
	// TokenResponse). With session.bind_to_token a session ends when its
	// token expires; a fresh token for the same identity moves that end to
	// the new token's expiry (never past session.max_lifetime), keeping
	// the session id, its certificates and its live connections. Only the
	// controller that created the session can extend it: another answers
	// 503 unavailable, naming it, and the client tries the next.
	PathSessionToken = "/v1/sessions/current/token"
	// PathRevocations: POST revokes (admin; RevocationRequest → 202
	// RevocationResponse).
	PathRevocations = "/v1/revocations"
	// PathStatus: GET a node's Status (admin on the API; RouterStatus on a
	// router's metrics listener).
	PathStatus = "/v1/status"
	// PathHealthz, PathReadyz and PathMetrics are on the metrics listener
	// only: liveness, readiness (plain text) and Prometheus text.
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
)

// LoginRequest is the body of POST PathSessions.
type LoginRequest struct {
	// The fields are declared in the order the SDK has always sent them.
	CSR   string `json:"csr"`   // PEM certificate request for the client's fresh key
	Token string `json:"token"` // OIDC ID token or JWT of a configured signer
}

// RotationRequest is the body of POST PathCertificates.
type RotationRequest struct {
	CSR string `json:"csr"` // PEM certificate request for the client's fresh key
}

// TokenRequest is the body of POST PathSessionToken.
type TokenRequest struct {
	Token string `json:"token"` // a fresh OIDC ID token or JWT for the session's identity
}

// TokenResponse answers POST PathSessionToken (200).
type TokenResponse struct {
	SessionID        string `json:"session_id"`
	Identity         string `json:"identity"`
	SessionExpiresAt string `json:"session_expires_at"` // RFC 3339: the session's end now
}

// SessionResponse answers a login or a rotation (201).
type SessionResponse struct {
	SessionID        string `json:"session_id"`
	Identity         string `json:"identity"`
	Serial           string `json:"serial"`      // lowercase hex
	Certificate      string `json:"certificate"` // PEM leaf, then the issuing intermediate
	CA               string `json:"ca"`          // PEM root
	ExpiresAt        string `json:"expires_at"`  // RFC 3339, the certificate's not_after
	SessionExpiresAt string `json:"session_expires_at"`
}

// RevocationRequest is the body of POST PathRevocations: exactly one of
// SessionID, Identity, Serial and RootSigned.
type RevocationRequest struct {
	SessionID  string `json:"session_id,omitempty"`
	Identity   string `json:"identity,omitempty"`
	Serial     string `json:"serial,omitempty"`
	RootSigned []byte `json:"root_signed,omitempty"` // base64 in JSON; pki revoke-controller's blob
	Reason     string `json:"reason,omitempty"`
}

// RevocationResponse answers an admin revocation (202).
type RevocationResponse struct {
	Kind string `json:"kind"` // session, serial, identity, controller
	Key  string `json:"key"`
	HLC  string `json:"hlc"`
}

// SessionList answers GET PathSessions?identity=ID.
type SessionList struct {
	Identity string        `json:"identity"`
	Sessions []SessionInfo `json:"sessions"`
}

// SessionInfo is one session in a SessionList.
type SessionInfo struct {
	SessionID    string     `json:"session_id"`
	Identity     string     `json:"identity"`
	Method       string     `json:"method"`
	Issuer       string     `json:"issuer"`
	CreatedAt    string     `json:"created_at"` // RFC 3339
	ExpiresAt    string     `json:"expires_at"` // RFC 3339
	Status       string     `json:"status"`     // active, or the reason it is not
	Certificates []CertInfo `json:"certificates"`
}

// CertInfo is one certificate of a session.
type CertInfo struct {
	Serial       string `json:"serial"`
	NotBefore    string `json:"not_before"` // RFC 3339
	NotAfter     string `json:"not_after"`  // RFC 3339
	Status       string `json:"status"`     // active, or the reason it is not
	Supersedes   string `json:"supersedes,omitempty"`
	SupersededAt string `json:"superseded_at,omitempty"` // RFC 3339
}

// Status is the body of GET PathStatus on a controller.
type Status struct {
	Node          string            `json:"node"`
	Role          string            `json:"role"` // controller or router
	Region        string            `json:"region"`
	Members       []MemberStatus    `json:"members"`
	VersionVector map[string]uint64 `json:"version_vector"` // author → highest contiguous seq
	Records       map[string]int    `json:"records"`        // record kind → count
	Digest        string            `json:"digest"`         // 16 hex digits
	// Issuers is the state of each configured token issuer (auth.oidc[],
	// then auth.jwt[]); controllers only.
	Issuers []IssuerStatus `json:"issuers,omitempty"`
}

// IssuerStatus is one token issuer in a controller's Status.
type IssuerStatus struct {
	Name   string `json:"name"`
	Issuer string `json:"issuer"`
	Kind   string `json:"kind"` // oidc or jwt
	// State is discovering (first attempt under way), unreachable
	// (discovery or the first key fetch failed; retried with backoff),
	// misconfigured (the discovery document contradicts the config; the
	// controller is not ready), ready, or degraded (discovered, but the
	// latest key fetch failed: cached keys still verify).
	State      string `json:"state"`
	Discovered bool   `json:"discovered"` // always true for a JWT signer
	Keys       int    `json:"keys"`       // keys cached
	// LastKeyRefresh is when the keys were last fetched (RFC 3339; absent:
	// never, or a keys_file).
	LastKeyRefresh string `json:"last_key_refresh,omitempty"`
	// LastError is the latest failure of discovery or of a key fetch,
	// absent once a later one succeeded; LastErrorAt is when a key fetch
	// last failed (RFC 3339).
	LastError   string `json:"last_error,omitempty"`
	LastErrorAt string `json:"last_error_at,omitempty"`
}

// RouterStatus is the body of GET PathStatus on a router: a Status with the
// router's live connections and readiness after it.
type RouterStatus struct {
	Status
	Connections int  `json:"connections"`
	Ready       bool `json:"ready"`
}

// MemberStatus is one mesh member as a node sees it.
type MemberStatus struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Region string `json:"region"`
	// State is "alive", "dead" (failed) or "left" (left gracefully).
	// memberlist does not report suspicion to its delegates, so a suspect
	// member shows as alive until it is declared dead.
	State string `json:"state"`
	// Lag is how many records the member lacked, compared with this node,
	// at their last exchange of causal contexts.
	Lag uint64 `json:"lag"`
}
