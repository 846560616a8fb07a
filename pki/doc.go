// Package pki owns certmesh's certificate authority: the key material that
// `certmesh pki init` and `certmesh pki rotate-controller` write to disk, the
// issuance of client session certificates, controller API server
// certificates, the SPIFFE URI names that every certificate carries, and the
// signatures on replicated records and on root-signed controller
// revocations (its --help).
//
// The hierarchy is
//
//	root CA (ca.pem, ca.key)
//	├── controller intermediate CA, one per controller, MaxPathLen 0,
//	│   URI SAN spiffe://<td>/controller/<name>
//	│   ├── client session leaves: CN=identity, ClientAuth,
//	│   │   URI SAN spiffe://<td>/identity/<identity>/session/<session-id>
//	│   └── the controller's API server certificate (issued at start)
//	├── router leaves: ServerAuth+ClientAuth, URI SAN spiffe://<td>/router/<name>
//	└── admin client certificate: ClientAuth, URI SAN spiffe://<td>/admin/<name>
//
// Invariants:
//   - Every function is pure: time comes in as a time.Time argument and
//     randomness as an io.Reader (serial numbers and the gossip key are read
//     from it; a nil reader means crypto/rand.Reader). Since Go 1.26 the standard library ignores the reader for key
//     generation and signatures and always uses a secure source, so keys and
//     signatures are not reproducible from a seed; serials and gossip keys are.
//   - Authority is read from verified chains only: the issuing controller is
//     the URI SAN of the intermediate at position 1 of a chain that
//     crypto/x509 built to the root (ControllerOf); an admin is a ClientAuth
//     leaf issued directly by the root with an admin URI SAN (AdminOf). The
//     order of the certificates a peer sent and the subject CN are never used.
//   - Path segments of SPIFFE URIs are percent-encoded (RFC 3986) in one
//     canonical form, so every identity string round-trips and every URI maps
//     to exactly one identity.
//   - Records and controller revocations are signed over SHA-256 of a context
//     string followed by the message. The context strings begin with a byte
//     that can never start a DER SEQUENCE, so a record signature can never be
//     mistaken for a certificate signature made with the same key.
//
// Sources: RFC 5280 (X.509 profile), RFC 3986 (URI syntax and
// percent-encoding), the SPIFFE X509-SVID specification (URI SAN layout;
// certmesh deliberately allows percent-encoded segments, which SPIFFE does
// not, so that any OIDC subject can be an identity).
package pki
