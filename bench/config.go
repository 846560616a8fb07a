package bench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/certmesh/certmesh/client"
)

// Config is one benchmark run. It is frozen once passed to Run.
type Config struct {
	// Controllers are the controllers' API base URLs (https://host:port);
	// logins, rotations and revocations go round robin over them, each to
	// one controller (no failover: a failure is counted against it).
	Controllers []string
	// Routers are the routers' client addresses (host:port); every client
	// connects through each of them.
	Routers []string
	// RootCAs verifies controllers and routers (the root, ca.pem).
	RootCAs *x509.CertPool
	// ServerName overrides the name routers' certificates are checked
	// against; default the host of each router's address.
	ServerName string
	// Token is the bearer token every client logs in with (an OIDC ID token
	// or a JWT); each login makes a new session.
	Token string
	// Admin, if set, is the admin certificate revocations are made with;
	// without it a client revokes its own session (DELETE
	// /v1/sessions/current), which routers enforce alike.
	Admin *tls.Certificate

	// Clients is how many clients run at once. Default 8.
	Clients int
	// Rate is client lives started per second over all clients; 0 starts
	// the next one as soon as a client is free.
	Rate float64
	// Duration is how long new lives start; those under way finish. Default 30s.
	Duration time.Duration
	// Rotate and Revoke turn steps 3 and 4 on.
	Rotate, Revoke bool

	// Probe is what is written to the upstream through a router; any
	// answer means admitted. Default an HTTP/1.1 GET.
	Probe []byte
	// RetryInterval is the wait between two connects to a router that
	// refused. Default 5ms.
	RetryInterval time.Duration
	// SyncTimeout bounds the wait for an admission at a router and for a
	// revoked session's connection to close. Default 10s.
	SyncTimeout time.Duration
	// CallTimeout bounds one controller call and one connection attempt.
	// Default 10s.
	CallTimeout time.Duration

	// Progress, if set, is called about every ProgressEvery with the
	// figures so far, from a goroutine of its own.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// DefaultProbe is an HTTP request any HTTP upstream answers, and an echo
// sends back.
var DefaultProbe = []byte("GET / HTTP/1.1\r\nHost: certmesh-bench\r\n\r\n")

// DefaultConfig returns the defaults; the caller sets the cluster's
// addresses, the roots and the token.
func DefaultConfig() Config {
	return Config{
		Clients:       8,
		Duration:      30 * time.Second,
		Rotate:        true,
		Revoke:        true,
		Probe:         DefaultProbe,
		RetryInterval: 5 * time.Millisecond,
		SyncTimeout:   10 * time.Second,
		CallTimeout:   10 * time.Second,
		ProgressEvery: time.Second,
	}
}

// Limits on what a run may ask for: far above what one machine can drive,
// low enough that a typo does not start a million goroutines.
const (
	maxClients = 10_000
	maxRate    = 100_000
)

// Validate checks the config; its errors name the field at fault.
func (c *Config) Validate() error {
	if len(c.Controllers) == 0 {
		return errors.New("controllers: at least one is required")
	}
	sdk := client.DefaultConfig()
	sdk.Controllers = c.Controllers
	if err := sdk.Validate(); err != nil {
		return fmt.Errorf("controllers: %w", err)
	}
	if len(c.Routers) == 0 {
		return errors.New("routers: at least one is required")
	}
	seen := make(map[string]bool, len(c.Routers))
	for _, r := range c.Routers {
		if _, port, err := net.SplitHostPort(r); err != nil || port == "" {
			return fmt.Errorf("routers: %q is not host:port", r)
		}
		if seen[r] {
			return fmt.Errorf("routers: %s is given twice", r) // its figures would mix two sets of clients
		}
		seen[r] = true
	}
	switch {
	case c.RootCAs == nil:
		return errors.New("root CAs: required")
	case c.Token == "":
		return errors.New("token: required")
	case c.Clients < 1 || c.Clients > maxClients:
		return fmt.Errorf("clients: %d not in [1, %d]", c.Clients, maxClients)
	case c.Rate < 0 || c.Rate > maxRate:
		return fmt.Errorf("rate: %g not in [0, %d] per second", c.Rate, maxRate)
	case c.Duration <= 0:
		return fmt.Errorf("duration: %v must be positive", c.Duration)
	case len(c.Probe) == 0:
		return errors.New("probe: empty")
	case c.RetryInterval <= 0:
		return fmt.Errorf("retry interval: %v must be positive", c.RetryInterval)
	case c.SyncTimeout <= 0:
		return fmt.Errorf("sync timeout: %v must be positive", c.SyncTimeout)
	case c.CallTimeout <= 0:
		return fmt.Errorf("call timeout: %v must be positive", c.CallTimeout)
	case c.Progress != nil && c.ProgressEvery <= 0:
		return fmt.Errorf("progress interval: %v must be positive", c.ProgressEvery)
	}
	return nil
}

// sdk returns the client SDK's config for one call at controller ctrl
// (no failover: the figure is that controller's) and router routers.
func (c *Config) sdk(ctrl string, routers ...string) client.Config {
	cfg := client.DefaultConfig()
	cfg.Controllers = []string{ctrl}
	cfg.Routers = routers
	cfg.RootCAs = c.RootCAs
	cfg.ServerName = c.ServerName
	cfg.HTTPTimeout = c.CallTimeout
	cfg.DialTimeout = c.CallTimeout
	return cfg
}
