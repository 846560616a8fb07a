package gossip

import (
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
)

// After a long partition, a rotated certificate's push reaches a router
// before the session record it belongs to, written long before and still
// queued in anti-entropy. The router must pull the session rather than take
// the certificate alone as found and refuse the client (unknown_session).
func TestPullFetchesTheSessionOfAKnownCertificate(t *testing.T) {
	v := &testVerifier{}
	net := newTestNet(t, 6, regions3, 3, v)
	w := newWriter(v, "ctrl-us")
	ctrl := net.nodes["ctrl-us"]
	s, cert := w.session(t, ctrl, net.now, 1)
	if err := ctrl.Publish(net.now, []crdt.Record{s, cert}); err != nil {
		t.Fatal(err)
	}
	ctrl.Ready() // the push is lost everywhere
	router := net.nodes["r-ap-0"]
	if ok, err := router.Store().MergeVerified(cert); !ok || err != nil {
		t.Fatalf("merge cert: %v %v", ok, err)
	}
	facts := crdt.CertFacts{Serial: cert.Serial, Session: cert.Session, Identity: cert.Identity,
		Issuer: "ctrl-us", NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
	if v := router.Store().Admission(facts, crdt.MillisOf(net.now), true); v != crdt.UnknownSession {
		t.Fatalf("admission before the pull: %v, want unknown_session", v)
	}
	start := net.now
	router.Want(net.now, cert.Serial, "ctrl-us")
	var res []WantResult
	for len(res) == 0 && net.now.Sub(start) < time.Second {
		net.run(time.Millisecond)
		res = net.wants["r-ap-0"]
	}
	if len(res) != 1 || !res[0].Found {
		t.Fatalf("want result %+v, want found", res)
	}
	if router.Stats().MessagesOut[MsgWantReq] == 0 {
		t.Fatal("resolved without asking anyone")
	}
	if v := router.Store().Admission(facts, crdt.MillisOf(net.now), true); v != crdt.Admit {
		t.Fatalf("admission after the pull: %v", v)
	}
}
