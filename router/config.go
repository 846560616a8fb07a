package router

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// Config configures a Router. It is frozen once passed to New.
type Config struct {
	// Name and Region are the node's, as in its mesh membership; they
	// appear in the status document.
	Name   string
	Region string
	// TrustDomain is the SPIFFE trust domain of client certificates.
	// Default "certmesh".
	TrustDomain string
	// Listen is the client mTLS address (TLS 1.3), host:port.
	Listen string
	// Upstream is the plain-TCP service admitted connections are proxied
	// to, host:port.
	Upstream string
	// Mode is the admission mode. Default ModeStrict.
	Mode Mode
	// PullTimeout is how long, in strict mode, an unknown certificate is
	// asked of peers before the connection is refused. Default 2s.
	PullTimeout time.Duration
	// HandshakeTimeout bounds a whole TLS handshake, the pull included.
	// Default 10s; it must exceed PullTimeout.
	HandshakeTimeout time.Duration
	// UpstreamDialTimeout bounds the connection to the upstream. Default 5s.
	UpstreamDialTimeout time.Duration
	// DrainTimeout is how long Shutdown lets live connections finish on
	// their own before closing them. Default 10s.
	DrainTimeout time.Duration
	// MaxHandshakes caps handshakes in progress (a pull may hold one for
	// PullTimeout); further connections wait in the listen backlog.
	// Default 1024.
	MaxHandshakes int
	// DataDir holds the state snapshot; empty disables it.
	DataDir string
	// SnapshotInterval is how often the snapshot is rewritten when the
	// state changed. Default 10s.
	SnapshotInterval time.Duration
	// MetricsListen serves /metrics, /healthz, /readyz and /v1/status over
	// plain HTTP; empty disables it.
	MetricsListen string
}

// DefaultConfig returns the defaults; the caller sets Name, Region, Listen,
// Upstream and, usually, DataDir and MetricsListen.
func DefaultConfig() Config {
	return Config{
		TrustDomain:         pki.DefaultTrustDomain,
		Mode:                ModeStrict,
		PullTimeout:         2 * time.Second,  // above a few cross-region round trips
		HandshakeTimeout:    10 * time.Second, // the pull plus a slow client
		UpstreamDialTimeout: 5 * time.Second,
		DrainTimeout:        10 * time.Second,
		MaxHandshakes:       1024,
		SnapshotInterval:    10 * time.Second, // what a restart may have to catch up on
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("router: config: empty node name")
	}
	if err := pki.ValidateTrustDomain(c.TrustDomain); err != nil {
		return fmt.Errorf("router: config: trust domain: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("router: config: listen %q: %w", c.Listen, err)
	}
	if _, _, err := net.SplitHostPort(c.Upstream); err != nil {
		return fmt.Errorf("router: config: upstream %q: %w", c.Upstream, err)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("router: config: metrics listen %q: %w", c.MetricsListen, err)
		}
	}
	switch {
	case c.Mode != ModeStrict && c.Mode != ModeVerified:
		return fmt.Errorf("router: config: admission mode %v", c.Mode)
	case c.PullTimeout < 0:
		return fmt.Errorf("router: config: negative pull timeout %v", c.PullTimeout)
	case c.HandshakeTimeout <= c.PullTimeout:
		return fmt.Errorf("router: config: handshake timeout %v must exceed pull timeout %v", c.HandshakeTimeout, c.PullTimeout)
	case c.UpstreamDialTimeout <= 0:
		return fmt.Errorf("router: config: upstream dial timeout %v", c.UpstreamDialTimeout)
	case c.DrainTimeout < 0:
		return fmt.Errorf("router: config: negative drain timeout %v", c.DrainTimeout)
	case c.MaxHandshakes < 1:
		return fmt.Errorf("router: config: max handshakes %d < 1", c.MaxHandshakes)
	case c.DataDir != "" && c.SnapshotInterval <= 0:
		return fmt.Errorf("router: config: snapshot interval %v", c.SnapshotInterval)
	}
	return nil
}
