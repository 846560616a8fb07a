package issuer

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/crdt"
)

// A JSON body must be one JSON value and nothing else but whitespace:
// trailing garbage or a second object is 400 bad_request and writes
// nothing, on every route that reads a body.
func TestTrailingDataAfterJSONIsRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.login("alice")
	counts := func() map[crdt.Kind]int {
		var c map[crdt.Kind]int
		e.mesh.View(func(s *crdt.Store) { c = s.Counts() })
		return c
	}
	before := counts()
	_, csr := newCSR(t)
	login := `{"token":"` + e.token("bob") + `","csr":` + jsonString(csr) + `}`
	for _, tc := range []struct {
		name, path, body string
		client           *http.Client
	}{
		{"revocation then garbage", "/v1/revocations", `{"identity":"alice"} junk`, e.client(e.admin)},
		{"two revocations", "/v1/revocations", `{"identity":"alice"}{"serial":"01"}`, e.client(e.admin)},
		{"revocation then a bracket", "/v1/revocations", `{"session_id":"` + alice.SessionID + `"}]`, e.client(e.admin)},
		{"login then garbage", "/v1/sessions", login + "x", e.client()},
		{"login twice", "/v1/sessions", login + login, e.client()},
		{"rotation then garbage", "/v1/sessions/current/certificates", `{"csr":` + jsonString(csr) + `} 1`, e.client(alice.cert)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.client, "POST", e.url+tc.path, tc.body)
			if r.status != http.StatusBadRequest || r.code() != api.CodeBadRequest {
				t.Fatalf("%d %s, want 400 bad_request", r.status, r.body)
			}
		})
	}
	if after := counts(); after[crdt.KindSession] != before[crdt.KindSession] || after[crdt.KindCert] != before[crdt.KindCert] ||
		after[crdt.KindRevocation] != before[crdt.KindRevocation] || after[crdt.KindIdentityRevocation] != before[crdt.KindIdentityRevocation] {
		t.Fatalf("records written by refused requests: before %v, after %v", before, after)
	}
	if v := e.verdict(alice); v != crdt.Admit {
		t.Fatalf("alice after the refused revocations: %v", v)
	}
	// Whitespace after the value is not data.
	if r := do(t, e.client(e.admin), "POST", e.url+"/v1/revocations", "{\"identity\":\"carol\"} \r\n\t"); r.status != http.StatusAccepted {
		t.Fatalf("trailing whitespace: %d %s", r.status, r.body)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
