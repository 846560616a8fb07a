// Package trust owns how certmesh's records are signed and trusted: the
// production crdt.Verifier, the crdt.Signer of a controller's key, and
// the bodies of the signer records that publish a key or carry the root's
// revocation of a controller. The issuer writes records with it, the
// gossip core checks every record it receives with it, and nothing else
// decides what a record is worth.
//
// Trust comes from the root CA alone (ARCHITECTURE.md, "Dissemination",
// requirement 5, and "Trust boundaries"):
//
//   - A signer record certifies itself: a controller intermediate issued
//     directly by the root, whose URI SAN names the record's author, signs
//     the record that publishes it (NewSignerRecord).
//   - Every other record must be signed by an active key its author
//     published that way, valid at the record's HLC (Verifier). Until the
//     author's signer record is known the answer is ErrUnknownSigner, and
//     the gossip core holds the record. Routers have no signer record, so
//     nothing they write is ever accepted.
//   - Session and certificate records count only from the controller that
//     created the session or issued the certificate (pki.CreatedBy,
//     pki.IssuedBy; ErrNotCreator).
//   - Revoking a controller takes the root's own signature
//     (CheckRevocation, Revocation.Record); the record carries the
//     writer's cut of the revoked controller's writes, which the revoked
//     key cannot forge.
//
// Verification happens in two places (precheck.go). A record's ECDSA
// signature is nearly all of what ingesting it costs, and the store may
// only be read under the lock that admission lookups take too, so a node
// checks signatures ahead, on every core and without the store
// (Verifier.Precheck, against controller certificates already checked
// against the root), and under the lock only confirms what needs the
// store (Verifier.VerifyShared: the key is still an active signer record
// of the author, valid at the record's HLC; the creator rule). A verdict
// binds the record object checked, never its dot or signature, and is
// forgotten after a bounded number of records; anything not confirmed
// takes the whole check, so what is accepted, and every reason for
// refusing, are those of Verify.
//
// A record is signed alone (crdt.Sign: its own signature over its signed
// bytes) or in a batch (crdt.SignBatch: one signature over the root of a
// Merkle tree of a commit's records, each record carrying the signature
// and, on the wire, its inclusion proof). The Verifier accepts both, for
// ever. A batch-signed record verifies alone: its bytes and proof lead to
// a root, which its author's key must have signed with the author, first
// seq and count (crdt.BatchSignedBytes); the batch messages verified are
// remembered per key (batchroots.go, bounded, only what verified), so the
// ECDSA verification is paid once per batch, and every other check (key
// active and valid at the record's HLC, the creator rule, a revoked
// controller's cut) is made per record as before.
//
// The package is pure: it reads no clock and does no I/O (times come from
// the records), and depends on crdt and pki only.
package trust
