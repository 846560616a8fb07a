package crdt

import "testing"

// A bound session (session.bind_to_token) is extended by another record for
// its id with a later Expires: the session ends at the latest one held,
// whatever order they arrive in, an earlier one never shortens it, and the
// session keeps the identity and creation of the record that created it.
func TestSessionExtensionsJoinByMax(t *testing.T) {
	created := newSession(ctrlA, 1, t0, sid(1), "alice", t0+20*minute)
	cert := newCert(ctrlA, 2, t0+1, serial(1), sid(1), "alice", t0+hour)
	ext1 := newSession(ctrlA, 3, t0+15*minute, sid(1), "alice", t0+40*minute)
	ext1.Created = created.Created
	ext2 := newSession(ctrlA, 4, t0+35*minute, sid(1), "alice", t0+50*minute)
	ext2.Created = created.Created
	for _, order := range [][]Record{
		{created, cert, ext1, ext2},
		{ext2, ext1, cert, created},
		{ext1, created, cert, ext2},
	} {
		s := NewStore()
		mustMerge(t, s, order...)
		if end, ok := s.SessionExpires(sid(1)); !ok || end != t0+50*minute {
			t.Errorf("SessionExpires = %v %v, want t0+50m", end, ok)
		}
		if sess, _ := s.Session(sid(1)); sess != created {
			t.Errorf("Session returns %+v, want the creating record", sess)
		}
		f := facts(cert)
		for _, tc := range []struct {
			now  Millis
			want Verdict
		}{
			{t0 + 20*minute, Admit},     // past the first expiry
			{t0 + 50*minute - 1, Admit}, // just before the latest
			{t0 + 50*minute, SessionExpired},
		} {
			if got := s.Live(f, tc.now); got != tc.want {
				t.Errorf("Live at t0+%v = %v, want %v", (tc.now-t0)/minute, got, tc.want)
			}
		}
	}
}
