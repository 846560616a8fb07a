package issuer

import (
	"bytes"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/pki"
)

// A controller the root revoked (pki revoke-controller) issues nothing
// more: logins and rotations get 503 unavailable, so that clients go to
// another controller, and no certificate is signed for nothing. Revocations
// still go through: they are never refused, whoever writes them.
func TestRevokedControllerStopsIssuing(t *testing.T) {
	e := newEnv(t)
	s := e.login("alice")
	revokeByRoot(t, e, "c1")
	issued := e.c.met.issued.Get()
	_, csr := newCSR(t)
	r := do(t, e.client(), "POST", e.url+"/v1/sessions", map[string]string{"token": e.token("bob"), "csr": csr})
	if r.status != http.StatusServiceUnavailable || r.code() != api.CodeUnavailable || !strings.Contains(string(r.body), "revoked by the root") {
		t.Errorf("login at a revoked controller: %d %s", r.status, r.body)
	}
	if _, r := e.rotate(s); r.status != http.StatusServiceUnavailable || r.code() != api.CodeUnavailable {
		t.Errorf("rotation at a revoked controller: %d %s", r.status, r.body)
	}
	if got := e.c.met.issued.Get(); got != issued {
		t.Errorf("%d certificates issued after the revocation", got-issued)
	}
	if r := e.revoke(api.RevocationRequest{Identity: "alice"}); r.status != http.StatusAccepted {
		t.Errorf("an admin revocation at a revoked controller: %d %s", r.status, r.body)
	}
}

// A controller that learns the root revoked it says so at ERROR, once,
// and again at each start.
func TestRevokedControllerLogsItAtError(t *testing.T) {
	e := newEnv(t)
	var logs lockedBuffer
	e.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e.restart()
	revokeByRoot(t, e, "c1")
	if n := strings.Count(logs.String(), "level=ERROR msg=\"this controller was revoked by the root"); n != 1 {
		t.Fatalf("%d ERROR lines about the revocation, want 1:\n%s", n, logs.String())
	}
	e.restart()
	if n := strings.Count(logs.String(), "level=ERROR msg=\"this controller was revoked by the root"); n != 2 {
		t.Errorf("after a restart, %d ERROR lines about the revocation, want 2:\n%s", n, logs.String())
	}
}

// lockedBuffer is a bytes.Buffer that several goroutines may write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// revokeByRoot revokes controller name with the root key, through e's
// controller, as certmesh pki revoke-controller does.
func revokeByRoot(t *testing.T, e *env, name string) {
	t.Helper()
	root, err := pki.LoadKeyPair(filepath.Join(e.pkiDir, pki.CACertFile), filepath.Join(e.pkiDir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	blob, err := pki.SignControllerRevocation(root.Key, "certmesh", name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := e.revoke(api.RevocationRequest{RootSigned: blob}); r.status != http.StatusAccepted {
		t.Fatalf("revoke %s: %d %s", name, r.status, r.body)
	}
}
