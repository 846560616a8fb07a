// Package router is certmesh's data-plane edge: it terminates client mTLS
// (TLS 1.3), admits or refuses each connection from the replicated state,
// proxies admitted connections to the service they name by SNI (or the
// router's default, the old single upstream), and closes live connections
// the moment a revocation that covers them, or an access change that no
// longer grants them, is applied (docs/deploy.md, docs/access.md).
//
// The parts, from the inside out:
//
//   - Decide is the admission decision, a pure function of (certificate
//     facts, store, now, mode). FactsFromChain reads the facts from a chain
//     that crypto/x509 verified against the root: serial, session and
//     identity from the leaf's SPIFFE URI SAN, issuing controller from the
//     verified intermediate (pki.ControllerOf), never from the order of the
//     certificates a client sent. The simulator (sim/) calls Decide on its
//     simulated routers, so the very same rule runs there.
//   - Router is the server. Inside the handshake it only verifies the
//     chain (client intermediates plus those known from controllers'
//     signer records, so a leaf sent alone is admitted): Go's TLS 1.3
//     server asks before it has checked the client's CertificateVerify, so
//     a copy of a certificate without its key gets no further. Once the
//     handshake has proven the key it decides; in strict mode an unknown
//     certificate is pulled from peers (Mesh.Want) for up to PullTimeout
//     before it is refused, so a client that connects right after login is
//     not refused because gossip was slower than it. A refused client gets
//     a TLS alert (certificate_revoked for a revocation,
//     certificate_expired for an expiry, else bad_certificate; after the
//     handshake the router writes that one record itself, alert.go); the
//     reason goes to the log and to
//     certmesh_admissions_total{result}, and how each pull ended to
//     certmesh_pull_total{result}.
//   - Access (access.go): once the certificate is admitted, the service
//     named by SNI <service>.svc.<trust-domain> (or DefaultService, or the
//     local Upstream that every session may reach) must be granted to the
//     session's identity or roles by a replicated policy (Access, a pure
//     function like Decide, a few map lookups). A refusal gets the alert
//     access_denied or unrecognized_name and counts in
//     certmesh_access_denied_total{reason}. An applied service, policy or
//     identity-roles record makes the router judge the live connections it
//     may concern again and close those no longer granted
//     (access_removed).
//   - Connections still in their TLS handshake, whose clients have proven
//     nothing, sit in a pending pool that never makes a new connection
//     wait: each client flight has FlightTimeout, a source address has at
//     most MaxPendingPerSource of them and the router MaxPending, and
//     beyond either the oldest is closed (pending.go). Idle or trickling
//     connections cannot hold the listener.
//   - The registry indexes live connections by session, serial, identity
//     and issuer. Applied records arrive from Mesh.Subscribe; a revocation
//     closes every live connection it covers at once, with the verdict of
//     crdt.Store.Live as the single rule (event driven, never polled). A
//     session's expiry closes its connections on time through one timer per
//     session. Rotation and the end of the old certificate's grace keep
//     connections up: a live connection belongs to its session.
//   - A snapshot of the store (crdt.Store.Snapshot, taken under the mesh's
//     lock and encoded after it, so that admission does not wait for the
//     encoding) is written atomically under the data directory at
//     intervals and on shutdown, and restored
//     before the mesh starts, so a router restarted during a control-plane
//     outage admits from what it knew and still enforces every revocation.
//
// Invariants:
//   - A connection is registered before its admission is re-checked against
//     the store, and the store is updated before subscribers hear of a
//     record, so a revocation applied at any moment during a handshake
//     either refuses it or closes it.
//   - Every goroutine has an owner: the accept loop and the event loop
//     belong to the Router, each connection's copiers to its handler, and
//     Shutdown waits for all of them.
//   - Routers never author records.
package router
