package sim

import (
	"fmt"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// The records a workload write creates, shared by the model-mode "mesh"
// strategy (mesh.go) and live mode (package sim/live), so that both
// replicate the very same records.

// WriteRecords returns the records that controller issuer creates at t for
// write w, their headers still to be stamped (author, seq, HLC), and, for
// an issue or a rotation, the facts a router reads from the new
// certificate. prev is the session's current certificate, which a
// rotation supersedes (hasPrev false: none known to this writer).
func WriteRecords(w *Write, t time.Time, issuer string, prev crdt.Serial, hasPrev bool) ([]crdt.Record, crdt.CertFacts) {
	var (
		recs  []crdt.Record
		facts crdt.CertFacts
	)
	sid := simSessionID(w.Session)
	identity := fmt.Sprintf("client-%d", w.Identity)
	switch w.Kind {
	case WriteIssue, WriteRotate:
		if w.Kind == WriteIssue {
			recs = append(recs, &crdt.SessionRecord{ID: sid, Identity: identity, Method: "sim",
				Created: crdt.MillisOf(t), Expires: crdt.MillisOf(t.Add(meshSessionTTL)), Roles: groupOf(w.Group)})
		}
		serial := simSerial(w.Cert)
		cert := &crdt.CertRecord{Serial: serial, Session: sid, Identity: identity,
			NotBefore: crdt.MillisOf(t.Add(-time.Minute)), NotAfter: crdt.MillisOf(t.Add(meshCertTTL))}
		if hasPrev && w.Kind == WriteRotate {
			cert.Supersedes, cert.SupersedeAt = prev, crdt.MillisOf(t.Add(meshRotationGrace))
		}
		facts = crdt.CertFacts{Serial: serial, Session: sid, Identity: identity, Issuer: issuer,
			NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
		recs = append(recs, cert)
	case WriteRevoke:
		recs = append(recs, &crdt.RevocationRecord{Target: crdt.RevokeSession, Session: sid, Reason: "sim",
			At: crdt.MillisOf(t), Until: crdt.MillisOf(t.Add(meshSessionTTL))})
	case WritePolicy:
		recs = append(recs, &crdt.PolicyRecord{Name: groupName(w.Group - 1), Deleted: true})
	}
	return recs, facts
}
