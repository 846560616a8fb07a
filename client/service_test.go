package client

import (
	"crypto/tls"
	"fmt"
	"net"
	"testing"
)

func TestForServiceAndAccessRefusals(t *testing.T) {
	cfg := DefaultConfig().ForService("echo", "certmesh")
	if cfg.ServerName != "echo.svc.certmesh" {
		t.Fatalf("ServerName %q", cfg.ServerName)
	}
	remote := func(alert uint8) error {
		return fmt.Errorf("client: dial: %w", &net.OpError{Op: "remote error", Err: tls.AlertError(alert)})
	}
	for _, tt := range []struct {
		err             error
		denied, refused bool
	}{
		{remote(49), true, false},  // access_denied
		{remote(112), true, false}, // unrecognized_name
		{remote(42), false, true},  // bad_certificate: the certificate, not the service
		{fmt.Errorf("eof"), false, false},
	} {
		if got := IsAccessDenied(tt.err); got != tt.denied {
			t.Errorf("IsAccessDenied(%v) = %v", tt.err, got)
		}
		if got := IsRefused(tt.err); got != tt.refused {
			t.Errorf("IsRefused(%v) = %v", tt.err, got)
		}
	}
}
