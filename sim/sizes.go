package sim

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// WriteBytes returns the encoded size of the records that write w creates,
// for strategies that do not encode real records (the baselines): with
// Cluster.RecordBytes set, that many bytes per write; otherwise the size of
// certmesh's own wire encoding (crdt.EncodedSize, signature included) of
// the records certmesh writes for it: an issue writes a session record and
// a certificate record, a rotation a certificate record that supersedes
// the previous one, a revocation a session revocation record. The fields
// hold values like the mesh strategy's, so that the baselines carry the
// same bytes.
func (c *Cluster) WriteBytes(w *Write) int {
	if c.RecordBytes > 0 {
		return c.RecordBytes
	}
	for int(w.ID) >= len(c.writeBytes) {
		c.writeBytes = append(c.writeBytes, 0)
	}
	if c.writeBytes[w.ID] == 0 {
		c.writeBytes[w.ID] = int32(encodedWriteBytes(c.Nodes[w.Controller], w))
	}
	return int(c.writeBytes[w.ID])
}

// encodedWriteBytes builds the records of w as a controller would and
// measures their encoding.
func encodedWriteBytes(ctrl NodeInfo, w *Write) int {
	at := crdt.MillisOf(epoch.Add(w.Requested))
	head := crdt.Header{
		Author: crdt.Author{Name: ctrl.Name, Incarnation: uint64(ctrl.ID) + 1},
		Seq:    uint64(w.ID) + 1,
		HLC:    crdt.NewTimestamp(at, 0),
	}
	var session crdt.SessionID
	binary.BigEndian.PutUint32(session[12:], uint32(w.Session))
	var serial crdt.Serial
	binary.BigEndian.PutUint32(serial[12:], uint32(w.Cert))
	identity := fmt.Sprintf("client-%d", w.Identity)
	hour := crdt.Millis(time.Hour / time.Millisecond)
	var recs []crdt.Record
	switch w.Kind {
	case WriteIssue, WriteRotate:
		if w.Kind == WriteIssue {
			recs = append(recs, &crdt.SessionRecord{Header: head, ID: session, Identity: identity, Method: "sim",
				Created: at, Expires: at + 24*hour, Roles: groupOf(w.Group)})
		}
		cert := &crdt.CertRecord{Header: head, Serial: serial, Session: session, Identity: identity,
			NotBefore: at - hour/60, NotAfter: at + hour}
		if w.Kind == WriteRotate {
			cert.Supersedes, cert.SupersedeAt = serial, at+hour/12
		}
		recs = append(recs, cert)
	case WriteRevoke:
		recs = append(recs, &crdt.RevocationRecord{Header: head, Target: crdt.RevokeSession, Session: session,
			Reason: "sim", At: at, Until: at + 24*hour})
	case WritePolicy:
		recs = append(recs, &crdt.PolicyRecord{Header: head, Name: groupName(w.Group - 1), Deleted: true})
	}
	n := 0
	for _, r := range recs {
		n += crdt.EncodedSize(r)
	}
	return n
}
