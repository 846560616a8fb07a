package router

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/certmesh/certmesh/crdt"
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
	// Upstream, when set, is a local default service, host:port (plain
	// TCP): a connection that names no service by SNI is proxied there,
	// whatever the policies, as before services existed.
	Upstream string
	// DefaultService, when set, is the replicated service a connection
	// that names none by SNI goes to, granted by policies like any other.
	// At most one of Upstream and DefaultService is set; with neither, a
	// connection must name its service.
	DefaultService string
	// Mode is the admission mode. Default ModeStrict.
	Mode Mode
	// PullTimeout is how long, in strict mode, an unknown certificate is
	// asked of peers before the connection is refused. Default 2s.
	PullTimeout time.Duration
	// HandshakeTimeout bounds a connection from accept to its admission:
	// the TLS handshake, then the decision and the pull. Default 10s; it
	// must exceed PullTimeout.
	HandshakeTimeout time.Duration
	// FlightTimeout bounds each of the client's two flights of the TLS
	// handshake: its ClientHello, from the moment the connection is
	// accepted, and its Certificate to Finished, from the moment the
	// ClientHello arrived (the router's own flight is in that time). It is
	// a deadline, not an idle timeout, so sending one byte a second buys
	// nothing. Default 5s: a client sends its ClientHello at once and its
	// second flight one round trip later; 5s leaves room for two lost
	// segments (TCP retransmits after 1s, then 2s) and a slow key store.
	// It must not exceed HandshakeTimeout.
	FlightTimeout time.Duration
	// MaxPending caps the connections still in their TLS handshake, whose
	// client has proven nothing yet. When it is reached the oldest of them
	// is closed to make room, so connections that never finish cannot
	// hold the listener: a client that sends its flights on time is done
	// long before an attacker can open MaxPending newer connections.
	// Default 4096: a pending connection costs a goroutine and a few KiB,
	// so about 100 MiB at worst, and a flood must open 4096 connections
	// within one client's handshake time to shed it.
	MaxPending int
	// MaxPendingPerSource caps the pending connections of one source
	// address (IPv4 address, IPv6 /64); beyond it that source's oldest is
	// closed, so one address, or a few, cannot take the pool from the
	// others. Default 64, well above what one host (or a NAT of busy
	// hosts) has in its handshakes at once, each lasting about a round
	// trip. 0 disables it: set 0 when clients reach the router through a
	// proxy or load balancer that hides their addresses.
	MaxPendingPerSource int
	// MaxAdmissions caps the admissions in progress after the handshake
	// (a pull may hold one for PullTimeout); further clients, which have
	// all proven their keys, wait for a slot within HandshakeTimeout.
	// Default 1024.
	MaxAdmissions int
	// UpstreamDialTimeout bounds the connection to the upstream. Default 5s.
	UpstreamDialTimeout time.Duration
	// DrainTimeout is how long Shutdown lets live connections finish on
	// their own before closing them. Default 10s.
	DrainTimeout time.Duration
	// DataDir holds the state snapshot; empty disables it.
	DataDir string
	// SnapshotInterval is how often the snapshot is rewritten when the
	// state changed. Default 10s.
	SnapshotInterval time.Duration
	// MetricsListen serves /metrics, /healthz, /readyz and /v1/status over
	// plain HTTP; empty disables it.
	MetricsListen string
}

// Defaults of the handshake limits (see Config for the reasons).
const (
	DefaultFlightTimeout       = 5 * time.Second
	DefaultMaxPending          = 4096
	DefaultMaxPendingPerSource = 64
)

// DefaultConfig returns the defaults; the caller sets Name, Region, Listen,
// Upstream or DefaultService and, usually, DataDir and MetricsListen.
func DefaultConfig() Config {
	return Config{
		TrustDomain:         pki.DefaultTrustDomain,
		Mode:                ModeStrict,
		PullTimeout:         2 * time.Second,  // above a few cross-region round trips
		HandshakeTimeout:    10 * time.Second, // the pull plus a slow client
		UpstreamDialTimeout: 5 * time.Second,
		DrainTimeout:        10 * time.Second,
		FlightTimeout:       DefaultFlightTimeout,
		MaxPending:          DefaultMaxPending,
		MaxPendingPerSource: DefaultMaxPendingPerSource,
		MaxAdmissions:       1024,
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
	if c.Upstream != "" {
		if _, _, err := net.SplitHostPort(c.Upstream); err != nil {
			return fmt.Errorf("router: config: upstream %q: %w", c.Upstream, err)
		}
	}
	if c.DefaultService != "" {
		if c.Upstream != "" {
			return errors.New("router: config: set upstream or default_service, not both")
		}
		if err := crdt.ValidServiceName(c.DefaultService); err != nil {
			return fmt.Errorf("router: config: default_service: %w", err)
		}
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
	case c.FlightTimeout <= 0 || c.FlightTimeout > c.HandshakeTimeout:
		return fmt.Errorf("router: config: flight timeout %v: want more than 0 and at most the handshake timeout %v", c.FlightTimeout, c.HandshakeTimeout)
	case c.MaxPending < 1:
		return fmt.Errorf("router: config: max pending %d < 1", c.MaxPending)
	case c.MaxPendingPerSource < 0:
		return fmt.Errorf("router: config: max pending per source %d < 0", c.MaxPendingPerSource)
	case c.MaxAdmissions < 1:
		return fmt.Errorf("router: config: max admissions %d < 1", c.MaxAdmissions)
	case c.DataDir != "" && c.SnapshotInterval <= 0:
		return fmt.Errorf("router: config: snapshot interval %v", c.SnapshotInterval)
	}
	return nil
}
