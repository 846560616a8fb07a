package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certmesh/certmesh/devcluster"
	"github.com/certmesh/certmesh/pki"
)

// A login pointed at a router's client listener or at a node's metrics
// listener says which it is, instead of Go's "server gave HTTP response to
// HTTPS client" or "tls: certificate required".
func TestLoginAtTheWrongPortSaysWhatIsThere(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a development cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := devcluster.Start(ctx, devcluster.Options{Dir: t.TempDir(), RoutersPerRegion: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tok, err := cl.OIDC.Mint("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(cl.PKIDir, pki.CACertFile)
	out := filepath.Join(t.TempDir(), "alice")
	login := func(url string) result {
		return runCLI("login", "--controller", url, "--ca", ca, "--token", tok, "--dir", out)
	}
	checkFailure(t, login("https://"+cl.Controllers[0].MetricsAddr()), 2, "metrics listener of controller ctrl-us-east", "api.listen")
	checkFailure(t, login("https://"+cl.Routers[0].Addr().String()), 2, "router edge-us-east-1's client listener", "api.listen")
	if r := login("https://" + cl.Controllers[0].APIAddr()); r.code != 0 {
		t.Errorf("login at the API: %v", r)
	}
}
