package crdt

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// accessDump is the derived access index in comparable form.
func accessDump(s *Store) map[string]any {
	subj := func(g *subjects) string {
		ids := slices.Sorted(maps.Keys(g.ids))
		roles := slices.Sorted(maps.Keys(g.roles))
		return fmt.Sprintf("all=%d ids=%v:%v roles=%v:%v", g.all, ids, g.ids, roles, g.roles)
	}
	d := map[string]any{}
	grants := map[string]string{}
	for k, g := range s.access.grants {
		grants[k] = subj(g)
	}
	pairs := map[string]string{}
	for k, g := range s.access.pairs {
		pairs[k] = subj(g)
	}
	byRole := map[string][]string{}
	for r, set := range s.access.byRole {
		byRole[r] = slices.Sorted(maps.Keys(set))
	}
	winners := map[string]Dot{}
	for k, r := range s.access.services.m {
		winners["service/"+k] = r.Dot()
	}
	for k, r := range s.access.policies.m {
		winners["policy/"+k] = r.Dot()
	}
	for k, r := range s.access.idRoles.m {
		winners["roles/"+k] = r.Dot()
	}
	d["grants"], d["pairs"], d["byRole"], d["winners"] = grants, pairs, byRole, winners
	return d
}

func TestAccessRecordsRoundTripAndKeepOldBytes(t *testing.T) {
	for _, r := range sampleRecords() {
		b := AppendRecord(nil, r)
		got, err := DecodeRecord(b)
		if err != nil {
			t.Fatalf("%v: %v", r.Kind(), err)
		}
		if diff := cmp.Diff(r, got, equateEmpty); diff != "" {
			t.Fatalf("%v round trip (-want +got):\n%s", r.Kind(), diff)
		}
		if len(b) > EncodedSizeHint(r) {
			t.Fatalf("%v: %d bytes, hint %d", r.Kind(), len(b), EncodedSizeHint(r))
		}
	}
	// A session without roles keeps the five body fields it was signed
	// with before roles existed.
	s := newSession(ctrlA, 1, t0, sid(1), "alice", t0+hour)
	if b := AppendRecord(nil, s); b[0] != 0x90|(headerFields+5) {
		t.Fatalf("a session without roles encodes as an array of %d", b[0]&0x0f)
	}
	// An empty roles field is not a second encoding of "no roles".
	s.Roles = []string{}
	b := AppendRecord(nil, &SessionRecord{Header: s.Header, ID: s.ID, Identity: "alice", Created: t0, Expires: t0 + hour, Roles: []string{"x"}})
	i := bytes.LastIndex(b, []byte{0x91, 0xa1, 'x'})
	b = append(append(b[:i:i], 0x90), b[i+3:]...)
	if _, err := DecodeRecord(b); err == nil {
		t.Fatal("decoded a session whose roles field is empty")
	}
}

func TestAccessRecordsRefuseBadNames(t *testing.T) {
	h := head(ctrlA, 1, t0)
	for _, r := range []Record{
		&ServiceRecord{Header: h, Name: "Echo", Address: "a:1"},
		&ServiceRecord{Header: h, Name: "echo"},
		&ServiceRecord{Header: h, Name: "echo", Address: "a:1", Roles: []string{"b", "a"}},
		&ServiceRecord{Header: h, Name: "echo", Address: "a:1", Roles: []string{"all"}},
		&ServiceRecord{Header: h, Name: "echo", Deleted: true, Address: "a:1"},
		&PolicyRecord{Header: h, Name: "p", Identities: []string{"alice"}, Services: []string{"@echo"}},
		&PolicyRecord{Header: h, Name: "p", Identities: []string{"#all"}, Services: []string{"@Echo"}},
		&PolicyRecord{Header: h, Name: "p", Identities: []string{"#all"}},
		&PolicyRecord{Header: h, Name: "p", Identities: []string{"#a b"}, Services: []string{"#all"}},
		&IdentityRolesRecord{Header: h, Identity: "", Roles: []string{"ops"}},
		&IdentityRolesRecord{Header: h, Identity: "bob", Roles: []string{"ops,dev"}},
	} {
		if err := Validate(r); err == nil {
			t.Errorf("%+v validated", r)
		}
	}
}

func TestAccessIsLastWriterWinsAndDeletesWin(t *testing.T) {
	s := NewStore()
	svc := &ServiceRecord{Header: head(ctrlA, 1, t0), Name: "echo", Address: "h:1", Roles: []string{"web"}}
	pol := &PolicyRecord{Header: head(ctrlA, 2, t0+1), Name: "p", Identities: []string{"#ops"}, Services: []string{"#web"}}
	roles := &IdentityRolesRecord{Header: head(ctrlB, 1, t0+2), Identity: "bob", Roles: []string{"ops"}}
	mustMerge(t, s, svc, pol, roles)
	if v := s.Access("bob", sid(1), "echo"); v != AccessGranted {
		t.Fatalf("bob through #ops: %v", v)
	}
	if v := s.Access("carol", sid(1), "echo"); v != NotGranted {
		t.Fatalf("carol: %v", v)
	}
	if v := s.Access("bob", sid(1), "nope"); v != UnknownService {
		t.Fatalf("unknown service: %v", v)
	}
	// An older delete loses; a newer one wins over the policy.
	mustMerge(t, s, &PolicyRecord{Header: head(ctrlC, 1, t0-1), Name: "p", Deleted: true})
	if v := s.Access("bob", sid(1), "echo"); v != AccessGranted {
		t.Fatalf("after an older delete: %v", v)
	}
	mustMerge(t, s, &PolicyRecord{Header: head(ctrlC, 2, t0+5), Name: "p", Deleted: true})
	if v := s.Access("bob", sid(1), "echo"); v != NotGranted {
		t.Fatalf("after a newer delete: %v", v)
	}
	// The session's claimed roles count too.
	mustMerge(t, s,
		&PolicyRecord{Header: head(ctrlC, 3, t0+6), Name: "q", Identities: []string{"#dev"}, Services: []string{"@echo"}},
		&SessionRecord{Header: head(ctrlA, 3, t0+6), ID: sid(2), Identity: "dora", Created: t0, Expires: t0 + hour, Roles: []string{"dev"}})
	if v := s.Access("dora", sid(2), "echo"); v != AccessGranted {
		t.Fatalf("dora through her claimed role: %v", v)
	}
	if got := s.AccessOf("dora", []string{"dev"}); !cmp.Equal(got, []Grant{{Service: "echo", Policies: []string{"q"}}}) {
		t.Fatalf("AccessOf: %+v", got)
	}
	assertIndexesMatchRebuild(t, s, t0)
}

// Superseded access records go once old; the current one stays; a
// tombstone goes after TombstoneRetention; the rule a controller applies
// to its disk agrees with the store's.
func TestAccessRetention(t *testing.T) {
	put1 := &ServiceRecord{Header: head(ctrlA, 1, t0), Name: "echo", Address: "h:1"}
	put2 := &ServiceRecord{Header: head(ctrlB, 1, t0+minute), Name: "echo", Address: "h:2"}
	web := &ServiceRecord{Header: head(ctrlA, 2, t0), Name: "web", Address: "h:3"}
	del := &ServiceRecord{Header: head(ctrlB, 2, t0+2*minute), Name: "web", Deleted: true}
	recs := []Record{put1, put2, web, del}
	for _, c := range []struct {
		now  Millis
		gone []Record
	}{
		{t0 + 5*minute, nil},
		{t0 + hour, []Record{put1, web}},
		{t0 + 31*24*hour, []Record{put1, web, del}},
	} {
		s := NewStore()
		mustMerge(t, s, recs...)
		disk := NewRetention(c.now, time.Second)
		for _, r := range recs {
			disk.NoteRevocation(r)
		}
		s.Collect(c.now, time.Second, 0)
		for _, r := range recs {
			wantGone := slices.Contains(c.gone, r)
			if gone := s.Get(r.Head().Dot()) == nil; gone != wantGone {
				t.Errorf("at +%v: %v gone %v, want %v", time.Duration(c.now-t0)*time.Millisecond, r.Head().Dot(), gone, wantGone)
			}
			if got := disk.Collectable(r); got != wantGone {
				t.Errorf("at +%v: disk rule says %v collectable %v, want %v", time.Duration(c.now-t0)*time.Millisecond, r.Head().Dot(), got, wantGone)
			}
		}
		if got, _ := s.Service("echo"); got != put2 {
			t.Errorf("echo is %v", got)
		}
		assertIndexesMatchRebuild(t, s, c.now)
	}
}
