package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/certmesh/certmesh/api"
)

// The bodies as deployed clients and controllers exchange them: names,
// order and omissions are part of the contract (package api).
func TestBodiesOnTheWire(t *testing.T) {
	members := []api.MemberStatus{{Name: "edge-1", Role: "router", Region: "eu", State: "alive", Lag: 2}}
	status := api.Status{Node: "c1", Role: "controller", Region: "us", Members: members,
		VersionVector: map[string]uint64{"c1.1": 7}, Records: map[string]int{"cert": 3}, Digest: "00000000000000ff"}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"error", api.ErrorBody{Error: "no such route /x", Code: api.CodeNotFound}, `{"error":"no such route /x","code":"not_found"}`},
		{"login", api.LoginRequest{Token: "t", CSR: "c"}, `{"csr":"c","token":"t"}`},
		{"rotation", api.RotationRequest{CSR: "c"}, `{"csr":"c"}`},
		{"session", api.SessionResponse{SessionID: "s", Identity: "alice", Serial: "0a", Certificate: "leaf", CA: "root",
			ExpiresAt: "2026-01-02T03:04:05Z", SessionExpiresAt: "2026-01-03T03:04:05Z"},
			`{"session_id":"s","identity":"alice","serial":"0a","certificate":"leaf","ca":"root","expires_at":"2026-01-02T03:04:05Z","session_expires_at":"2026-01-03T03:04:05Z"}`},
		{"revoke a session", api.RevocationRequest{SessionID: "s"}, `{"session_id":"s"}`},
		{"revoke a controller", api.RevocationRequest{RootSigned: []byte{1, 2}, Reason: "key stolen"}, `{"root_signed":"AQI=","reason":"key stolen"}`},
		{"revoked", api.RevocationResponse{Kind: "serial", Key: "0a", HLC: "h"}, `{"kind":"serial","key":"0a","hlc":"h"}`},
		{"sessions", api.SessionList{Identity: "alice", Sessions: []api.SessionInfo{{SessionID: "s", Identity: "alice", Method: "oidc:x",
			Issuer: "c1", CreatedAt: "a", ExpiresAt: "b", Status: "active", Certificates: []api.CertInfo{
				{Serial: "01", NotBefore: "a", NotAfter: "b", Status: "active"},
				{Serial: "02", NotBefore: "a", NotAfter: "b", Status: "superseded", Supersedes: "01", SupersededAt: "c"},
			}}}},
			`{"identity":"alice","sessions":[{"session_id":"s","identity":"alice","method":"oidc:x","issuer":"c1","created_at":"a","expires_at":"b","status":"active","certificates":[` +
				`{"serial":"01","not_before":"a","not_after":"b","status":"active"},` +
				`{"serial":"02","not_before":"a","not_after":"b","status":"superseded","supersedes":"01","superseded_at":"c"}]}]}`},
		{"controller status", status,
			`{"node":"c1","role":"controller","region":"us","members":[{"name":"edge-1","role":"router","region":"eu","state":"alive","lag":2}],"version_vector":{"c1.1":7},"records":{"cert":3},"digest":"00000000000000ff"}`},
		{"router status", api.RouterStatus{Status: status, Connections: 4},
			`{"node":"c1","role":"controller","region":"us","members":[{"name":"edge-1","role":"router","region":"eu","state":"alive","lag":2}],"version_vector":{"c1.1":7},"records":{"cert":3},"digest":"00000000000000ff","connections":4,"ready":false}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestEveryCodeHasItsStatus(t *testing.T) {
	for code, want := range map[api.Code]int{
		api.CodeBadRequest:        http.StatusBadRequest,
		api.CodeBodyTooLarge:      http.StatusRequestEntityTooLarge,
		api.CodeRateLimited:       http.StatusTooManyRequests,
		api.CodeClockSkew:         http.StatusServiceUnavailable,
		api.CodeCSRInvalid:        http.StatusBadRequest,
		api.CodeForbidden:         http.StatusForbidden,
		api.CodeSessionRevoked:    http.StatusForbidden,
		api.CodeSessionExpired:    http.StatusForbidden,
		api.CodeNotFound:          http.StatusNotFound,
		api.CodeMethod:            http.StatusMethodNotAllowed,
		api.CodeUnavailable:       http.StatusServiceUnavailable,
		api.CodeInternal:          http.StatusInternalServerError,
		api.CodeTokenExpired:      http.StatusUnauthorized,
		api.CodeTokenNotYetValid:  http.StatusUnauthorized,
		api.CodeTokenInvalid:      http.StatusUnauthorized,
		api.CodeAudienceMismatch:  http.StatusUnauthorized,
		api.CodeIssuerUnknown:     http.StatusUnauthorized,
		api.CodeIssuerUnavailable: http.StatusServiceUnavailable,
		"no_such_code":            http.StatusInternalServerError,
	} {
		if got := code.HTTPStatus(); got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
	}
}
