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
// The package is pure: it reads no clock and does no I/O (times come from
// the records), and depends on crdt and pki only.
package trust
