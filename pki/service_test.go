package pki_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/certmesh/certmesh/pki"
)

func TestServiceHosts(t *testing.T) {
	for _, tt := range []struct {
		host, want string
		ok         bool
	}{
		{"echo.svc.certmesh", "echo", true},
		{"ECHO.svc.Certmesh.", "echo", true},
		{"a.b.svc.certmesh", "", false},
		{".svc.certmesh", "", false},
		{"echo.svc.other", "", false},
		{"router-1", "", false},
		{"", "", false},
	} {
		got, ok := pki.ServiceOfHost(tt.host, "certmesh")
		if got != tt.want || ok != tt.ok {
			t.Errorf("ServiceOfHost(%q) = %q %v, want %q %v", tt.host, got, ok, tt.want, tt.ok)
		}
	}
	if h := pki.ServiceHost("echo", "certmesh"); h != "echo.svc.certmesh" {
		t.Errorf("ServiceHost = %q", h)
	}
}

// A router's certificate verifies under every service's host name.
func TestRouterCertificateCoversServices(t *testing.T) {
	now := time.Now()
	root, err := pki.NewRoot("certmesh", time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := pki.NewRouter(root, "certmesh", "edge-1", nil, time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"echo.svc.certmesh", "db.svc.certmesh", "edge-1", "localhost"} {
		if err := kp.Cert.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := kp.Cert.VerifyHostname("echo.svc.other"); err == nil {
		t.Error("verifies for another trust domain")
	}
}
