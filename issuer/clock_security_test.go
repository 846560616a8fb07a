package issuer

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
)

// steppedMesh is a fake mesh whose hybrid clock runs lead ahead of the
// wall clock, as after this node's clock was stepped back.
type steppedMesh struct {
	*fakeMesh
	lead atomic.Int64
}

func (m *steppedMesh) Now() crdt.Timestamp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock.Now(time.Now().Add(time.Duration(m.lead.Load())))
}

// A controller whose clock was stepped back has a hybrid clock ahead of
// its wall clock (an HLC never goes back). Within the max offset, peers
// accept what it stamps; beyond it they would hold its records as written
// in the future, so it refuses writes with 503 clock_skew until wall time
// catches up, even though its offset from its peers is now nil.
func TestClockSteppedBackRefusesWrites(t *testing.T) {
	var sm *steppedMesh
	fx := newAPIFixtureOn(t, func(s *crdt.Store) Mesh {
		sm = &steppedMesh{fakeMesh: newFakeMesh(s)}
		return sm
	})
	probe := func() api.ErrorBody {
		t.Helper()
		rec := fx.serve(routeLogin, []byte(`{"token":"x","csr":"y"}`))
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		if eb.Code == api.CodeClockSkew && rec.Code != http.StatusServiceUnavailable {
			t.Errorf("clock_skew with status %d", rec.Code)
		}
		return eb
	}
	for _, tc := range []struct {
		lead time.Duration
		skew bool
	}{
		{0, false},
		{crdt.DefaultMaxOffset - time.Second, false}, // what observing a peer within the max offset can do
		{crdt.DefaultMaxOffset + 2*time.Second, true},
		{40 * time.Second, true},
		{0, true}, // the hybrid clock stays where it went until wall time passes it
	} {
		sm.lead.Store(int64(tc.lead))
		eb := probe()
		if got := eb.Code == api.CodeClockSkew; got != tc.skew {
			t.Errorf("hybrid clock %v ahead: %s %q, want clock_skew %v", tc.lead, eb.Code, eb.Error, tc.skew)
		}
		if tc.skew && !strings.Contains(eb.Error, "went back") {
			t.Errorf("hybrid clock %v ahead: %q does not say the clock went back", tc.lead, eb.Error)
		}
	}
}
