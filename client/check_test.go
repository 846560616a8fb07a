package client

import (
	"errors"
	"net/http"
	"testing"

	"github.com/certmesh/certmesh/api"
)

// How the answers of several controllers to a session check are read.
func TestSessionCheckAnswers(t *testing.T) {
	unreachable := errors.New("dial tcp: connection refused")
	old := &APIError{Status: http.StatusMethodNotAllowed, Code: api.CodeMethod}
	unknownHere := &APIError{Status: http.StatusForbidden, Code: api.CodeForbidden}
	revoked := &APIError{Status: http.StatusForbidden, Code: api.CodeSessionRevoked}
	expired := &APIError{Status: http.StatusForbidden, Code: api.CodeSessionExpired}
	for _, tc := range []struct {
		name        string
		err         error
		over        bool
		reason      Reason
		unsupported bool
	}{
		{"one controller says revoked, one is unreachable", errors.Join(unreachable, revoked), true, ReasonRevoked, false},
		{"expired", expired, true, ReasonExpired, false},
		{"unknown here, unreachable elsewhere: nobody can say", errors.Join(unknownHere, unreachable), false, ReasonNone, false},
		{"every controller refuses (controllers that predate the codes)", errors.Join(unknownHere, unknownHere), true, ReasonRevoked, false},
		{"controllers that predate the route", errors.Join(old, unreachable), false, ReasonNone, true},
		{"an old controller and one that refuses", errors.Join(old, unknownHere), false, ReasonNone, false},
		{"unreachable everywhere", errors.Join(unreachable, unreachable), false, ReasonNone, false},
	} {
		reason, over := sessionOverReason(tc.err)
		if over != tc.over || reason != tc.reason || SessionOver(tc.err) != tc.over || unsupported(tc.err) != tc.unsupported {
			t.Errorf("%s: over %v (%v), unsupported %v", tc.name, over, reason, unsupported(tc.err))
		}
	}
}
