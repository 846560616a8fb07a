package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certmesh/certmesh/auth"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// Node is the `node` section shared by controllers and routers.
type Node struct {
	Name    string `yaml:"name" help:"node name, unique in the mesh (required)"`
	Region  string `yaml:"region" help:"region the node runs in; steers gossip paths"`
	DataDir string `yaml:"data_dir" config:"path" help:"directory of the node's durable state; default data/<node.name> beside the config file"`
}

// Mesh is the `mesh` section: the gossip mesh (hashicorp/memberlist).
type Mesh struct {
	Bind      string   `yaml:"bind" help:"host:port memberlist listens on (UDP and TCP)"`
	Advertise string   `yaml:"advertise" help:"host:port announced to peers; default: the bind address"`
	Join      []string `yaml:"join" help:"seed host:port list; retried in the background while unreachable"`
	KeyFile   string   `yaml:"key_file" config:"path" help:"gossip keyring: one base64 key a line; the first encrypts, all decrypt (required)"`
	// JoinTimeout bounds the wait for a seed at start: a controller that
	// finds no seed but itself answering within it becomes ready alone (a
	// router never does: it needs its snapshot or a controller).
	JoinTimeout time.Duration `yaml:"join_timeout" help:"how long to wait for a seed before a lone controller counts itself ready"`
	// EagerTrees is how many of the two trees a batch travels in each
	// region carry the records; with 1 the second only announces them
	// (gossip.Config.EagerTrees, docs/meshsim.md "Bytes").
	EagerTrees int `yaml:"eager_trees" help:"region trees that carry the records: 2, or 1 for a lazy second tree (about 35% fewer bytes, a longer tail under heavy loss)"`
}

// PKI is the `pki` section: the node's trust anchor and its own certificate.
type PKI struct {
	CA          string `yaml:"ca" config:"path" help:"root CA certificate (PEM) (required)"`
	Cert        string `yaml:"cert" config:"path" help:"the node's certificate chain (PEM) (required)"`
	Key         string `yaml:"key" config:"path" help:"the node's private key (PEM) (required)"`
	TrustDomain string `yaml:"trust_domain" help:"SPIFFE trust domain"`
}

// API is the controller's `api` section.
type API struct {
	Listen string   `yaml:"listen" help:"host:port of the HTTPS API"`
	Hosts  []string `yaml:"hosts" help:"extra DNS names or IPs on the API server certificate"`
	// RateLimit is requests per second per source IP; the burst is twice
	// that. 0 disables the limit.
	RateLimit float64 `yaml:"rate_limit" help:"requests per second per source IP (burst twice that); 0 disables"`
}

// Certs is the controller's `certs` section.
type Certs struct {
	TTL           time.Duration `yaml:"ttl" help:"lifetime of a client certificate"`
	RotationGrace time.Duration `yaml:"rotation_grace" help:"how long a rotated-out certificate stays valid for new connections"`
}

// Session is the controller's `session` section.
type Session struct {
	MaxLifetime time.Duration `yaml:"max_lifetime" help:"lifetime of a session, across its certificate rotations; at most 720h (30 days), the bound every node keeps revocations for"`
	// BindToToken ends a session when the token it was opened with
	// expires, unless the client presents a fresh token for it (POST
	// /v1/sessions/current/token); max_lifetime still bounds it. Off by
	// default: a session lasts max_lifetime whatever its token's expiry.
	BindToToken bool `yaml:"bind_to_token" help:"end a session when its login token expires, unless the client presents a fresh token for the same identity (certmesh refresh); max_lifetime still bounds it"`
}

// Metrics is the `metrics` section.
type Metrics struct {
	Listen string `yaml:"listen" help:"host:port of plain-HTTP /metrics, /healthz, /readyz, /v1/status; empty disables"`
}

// Admission is the router's `admission` section.
type Admission struct {
	Mode        string        `yaml:"mode" help:"strict (cert must be known in the replicated state) or verified (chain-valid and not revoked)"`
	PullTimeout time.Duration `yaml:"pull_timeout" help:"strict mode: how long to ask peers for an unknown cert before refusing"`
}

// Handshake is the router's `handshake` section: what clients that have
// not finished their TLS handshake, and so have proven nothing, may hold
// (router.Config gives the reasons for the defaults).
type Handshake struct {
	FlightTimeout       time.Duration `yaml:"flight_timeout" help:"deadline of each client flight of the TLS handshake (the ClientHello, then certificate to Finished)"`
	MaxPending          int           `yaml:"max_pending" help:"connections in their TLS handshake at once; beyond it the oldest is closed"`
	MaxPendingPerSource int           `yaml:"max_pending_per_source" help:"of those, from one source address (IPv6: /64); beyond it that source's oldest is closed; 0 disables (behind a proxy that hides client addresses)"`
}

// Controller is a controller's configuration (docs/deploy.md).
type Controller struct {
	Node    Node        `yaml:"node"`
	Mesh    Mesh        `yaml:"mesh"`
	PKI     PKI         `yaml:"pki"`
	API     API         `yaml:"api"`
	Auth    auth.Config `yaml:"auth"`
	Certs   Certs       `yaml:"certs"`
	Session Session     `yaml:"session"`
	Metrics Metrics     `yaml:"metrics"`
}

// Router is a router's configuration (docs/deploy.md).
type Router struct {
	Node     Node   `yaml:"node"`
	Mesh     Mesh   `yaml:"mesh"`
	PKI      PKI    `yaml:"pki"`
	Listen   string `yaml:"listen" help:"host:port of the client mTLS listener (TLS 1.3)"`
	Upstream string `yaml:"upstream" help:"host:port of a plain TCP service that clients naming no service by SNI are proxied to, every admitted session alike (as before services)"`
	// DefaultService names the replicated service (certmesh service put)
	// that a connection naming no service by SNI goes to; policies apply.
	DefaultService string    `yaml:"default_service" help:"the service a client naming none by SNI reaches, if a policy grants it (not with upstream)"`
	Admission      Admission `yaml:"admission"`
	Handshake      Handshake `yaml:"handshake"`
	Metrics        Metrics   `yaml:"metrics"`
}

// Defaults shared by both modes.
const (
	DefaultRegion      = "default"
	DefaultMeshBind    = "127.0.0.1:7946"
	DefaultJoinTimeout = 5 * time.Second // readiness waits this long for a first exchange (docs/deploy.md)
	DefaultEagerTrees  = 2               // both region trees carry the records: latency first
)

// Controller defaults (docs/deploy.md).
const (
	DefaultAPIListen     = "127.0.0.1:8443"
	DefaultRateLimit     = 50 // per source IP per second, burst 100
	DefaultCertTTL       = time.Hour
	DefaultRotationGrace = 5 * time.Minute
	DefaultMaxLifetime   = 24 * time.Hour
	DefaultCtrlMetrics   = "127.0.0.1:9100"
)

// Router defaults (docs/deploy.md).
const (
	DefaultRouterListen  = "127.0.0.1:3022"
	DefaultRouterMetrics = "127.0.0.1:9101"
	DefaultPullTimeout   = 2 * time.Second
	// The handshake section's defaults, router.DefaultFlightTimeout and
	// the like (router.Config says why).
	DefaultFlightTimeout       = 5 * time.Second
	DefaultMaxPending          = 4096
	DefaultMaxPendingPerSource = 64
	AdmissionStrict            = "strict"
	AdmissionVerified          = "verified"
)

// DefaultController returns a controller configuration with every default
// set; node.name, pki.* files, mesh.key_file and at least one auth issuer
// remain to be given.
func DefaultController() Controller {
	return Controller{
		Node:    Node{Region: DefaultRegion},
		Mesh:    Mesh{Bind: DefaultMeshBind, JoinTimeout: DefaultJoinTimeout, EagerTrees: DefaultEagerTrees},
		PKI:     PKI{TrustDomain: pki.DefaultTrustDomain},
		API:     API{Listen: DefaultAPIListen, RateLimit: DefaultRateLimit},
		Certs:   Certs{TTL: DefaultCertTTL, RotationGrace: DefaultRotationGrace},
		Session: Session{MaxLifetime: DefaultMaxLifetime},
		Metrics: Metrics{Listen: DefaultCtrlMetrics},
	}
}

// DefaultRouter returns a router configuration with every default set.
func DefaultRouter() Router {
	return Router{
		Node:      Node{Region: DefaultRegion},
		Mesh:      Mesh{Bind: DefaultMeshBind, JoinTimeout: DefaultJoinTimeout, EagerTrees: DefaultEagerTrees},
		PKI:       PKI{TrustDomain: pki.DefaultTrustDomain},
		Listen:    DefaultRouterListen,
		Admission: Admission{Mode: AdmissionStrict, PullTimeout: DefaultPullTimeout},
		Handshake: Handshake{FlightTimeout: DefaultFlightTimeout, MaxPending: DefaultMaxPending, MaxPendingPerSource: DefaultMaxPendingPerSource},
		Metrics:   Metrics{Listen: DefaultRouterMetrics},
	}
}

// FieldError is a validation error about one setting, named by its YAML
// path (api.rate_limit). Load turns it into an *Error that also names the
// file and the source of the value.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate reports the first problem in c as a *FieldError.
func (c *Controller) Validate() error {
	if err := c.Node.validate(); err != nil {
		return err
	}
	if err := c.Mesh.validate(); err != nil {
		return err
	}
	if err := c.PKI.validate(); err != nil {
		return err
	}
	if err := checkHostPort("api.listen", c.API.Listen, false); err != nil {
		return err
	}
	for i, h := range c.API.Hosts {
		if err := checkHost(h); err != nil {
			return fieldErr("api.hosts", "entry %d: %v", i, err)
		}
	}
	if c.API.RateLimit < 0 {
		return fieldErr("api.rate_limit", "%v is negative; 0 disables the limit", c.API.RateLimit)
	}
	if err := c.Auth.Validate(); err != nil {
		return authFieldError(err)
	}
	if len(c.Auth.OIDC) == 0 && len(c.Auth.JWT) == 0 {
		return fieldErr("auth", "no token issuer configured; set auth.oidc or auth.jwt")
	}
	if c.Certs.TTL < time.Minute {
		return fieldErr("certs.ttl", "%v is shorter than 1m", c.Certs.TTL)
	}
	if c.Certs.RotationGrace < 0 {
		return fieldErr("certs.rotation_grace", "%v is negative", c.Certs.RotationGrace)
	}
	if c.Session.MaxLifetime < time.Minute {
		return fieldErr("session.max_lifetime", "%v is shorter than 1m", c.Session.MaxLifetime)
	}
	if c.Session.MaxLifetime > crdt.MaxSessionLifetime {
		// The mesh-wide bound that garbage collection relies on: a
		// revocation whose session a node has not seen is kept that long.
		return fieldErr("session.max_lifetime", "%v is longer than %v, the longest session a mesh allows", c.Session.MaxLifetime, crdt.MaxSessionLifetime)
	}
	return checkHostPort("metrics.listen", c.Metrics.Listen, true)
}

// Validate reports the first problem in r as a *FieldError.
func (r *Router) Validate() error {
	if err := r.Node.validate(); err != nil {
		return err
	}
	if err := r.Mesh.validate(); err != nil {
		return err
	}
	if err := r.PKI.validate(); err != nil {
		return err
	}
	if err := checkHostPort("listen", r.Listen, false); err != nil {
		return err
	}
	if r.Upstream != "" {
		if err := checkHostPort("upstream", r.Upstream, false); err != nil {
			return err
		}
	}
	if r.DefaultService != "" {
		if r.Upstream != "" {
			return fieldErr("default_service", "set upstream or default_service, not both")
		}
		if err := crdt.ValidServiceName(r.DefaultService); err != nil {
			return fieldErr("default_service", "%v", err)
		}
	}
	switch r.Admission.Mode {
	case AdmissionStrict, AdmissionVerified:
	default:
		return fieldErr("admission.mode", "%q is neither %s nor %s", r.Admission.Mode, AdmissionStrict, AdmissionVerified)
	}
	if r.Admission.PullTimeout < 0 {
		return fieldErr("admission.pull_timeout", "%v is negative", r.Admission.PullTimeout)
	}
	if r.Handshake.FlightTimeout <= 0 {
		return fieldErr("handshake.flight_timeout", "%v is not positive", r.Handshake.FlightTimeout)
	}
	if r.Handshake.FlightTimeout > time.Minute {
		return fieldErr("handshake.flight_timeout", "%v is longer than 1m: an idle connection would hold its place that long", r.Handshake.FlightTimeout)
	}
	if r.Handshake.MaxPending < 1 {
		return fieldErr("handshake.max_pending", "%d is less than 1", r.Handshake.MaxPending)
	}
	if r.Handshake.MaxPendingPerSource < 0 {
		return fieldErr("handshake.max_pending_per_source", "%d is negative; 0 disables the limit", r.Handshake.MaxPendingPerSource)
	}
	return checkHostPort("metrics.listen", r.Metrics.Listen, true)
}

// finish fills the settings whose defaults derive from others; dir is the
// config file's directory.
func (c *Controller) finish(dir string) { c.Node.finish(dir) }
func (r *Router) finish(dir string)     { r.Node.finish(dir) }

// resolveExtra resolves the paths that live in types without config tags.
func (c *Controller) resolveExtra(resolve func(string) string) {
	for i := range c.Auth.JWT {
		c.Auth.JWT[i].KeysFile = resolve(c.Auth.JWT[i].KeysFile)
		c.Auth.JWT[i].CAFile = resolve(c.Auth.JWT[i].CAFile)
	}
	for i := range c.Auth.OIDC {
		c.Auth.OIDC[i].CAFile = resolve(c.Auth.OIDC[i].CAFile)
	}
}

func (n *Node) finish(dir string) {
	if n.DataDir == "" && n.Name != "" {
		n.DataDir = filepath.Join(dir, "data", n.Name)
	}
}

func (n *Node) validate() error {
	if n.Name == "" {
		return fieldErr("node.name", "is required")
	}
	if err := pki.ValidateName(n.Name); err != nil {
		return fieldErr("node.name", "%v", err)
	}
	if n.Region == "" {
		return fieldErr("node.region", "is empty")
	}
	if len(n.Region) > 64 || strings.ContainsAny(n.Region, " \t\n/") {
		return fieldErr("node.region", "%q is not a short word", n.Region)
	}
	if n.DataDir == "" {
		return fieldErr("node.data_dir", "is required")
	}
	return nil
}

func (m *Mesh) validate() error {
	if err := checkHostPort("mesh.bind", m.Bind, false); err != nil {
		return err
	}
	if err := checkHostPort("mesh.advertise", m.Advertise, true); err != nil {
		return err
	}
	for i, j := range m.Join {
		if err := checkHostPort(fmt.Sprintf("mesh.join[%d]", i), j, false); err != nil {
			return err
		}
	}
	if m.KeyFile == "" {
		return fieldErr("mesh.key_file", "is required (the gossip keyring; `certmesh pki init` writes gossip.key)")
	}
	if m.JoinTimeout <= 0 {
		return fieldErr("mesh.join_timeout", "%v is not positive", m.JoinTimeout)
	}
	if m.EagerTrees != 1 && m.EagerTrees != 2 {
		return fieldErr("mesh.eager_trees", "%d: want 2 (both region trees carry the records) or 1 (the second is lazy)", m.EagerTrees)
	}
	return nil
}

func (p *PKI) validate() error {
	for _, f := range []struct{ name, v string }{{"pki.ca", p.CA}, {"pki.cert", p.Cert}, {"pki.key", p.Key}} {
		if f.v == "" {
			return fieldErr(f.name, "is required")
		}
	}
	if err := pki.ValidateTrustDomain(p.TrustDomain); err != nil {
		return fieldErr("pki.trust_domain", "%v", err)
	}
	return nil
}

// checkHostPort checks a host:port setting; empty is an error unless
// optional.
func checkHostPort(field, v string, optional bool) error {
	if v == "" {
		if optional {
			return nil
		}
		return fieldErr(field, "is required (host:port)")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fieldErr(field, "%q is not host:port", v)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !strings.HasSuffix(field, "listen") && !strings.HasSuffix(field, "bind")) {
		return fieldErr(field, "%q: port %q is not a number from 1 to 65535", v, port)
	}
	if host != "" {
		if err := checkHost(host); err != nil {
			return fieldErr(field, "%q: %v", v, err)
		}
	}
	return nil
}

// checkHost accepts an IP address or a DNS name.
func checkHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
	}
	for _, label := range strings.Split(strings.TrimPrefix(h, "*."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is neither an IP address nor a DNS name", h)
			}
		}
	}
	return nil
}

// authFieldError turns an auth.Config.Validate error, whose message starts
// with the YAML path at fault ("auth: auth.oidc[0].issuer: is required"),
// into a *FieldError for that path.
func authFieldError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "auth: ")
	end := strings.IndexAny(msg, ": ")
	if end <= 0 || !strings.HasPrefix(msg, "auth.") {
		return &FieldError{Field: "auth", Err: errors.New(msg)}
	}
	field, rest := msg[:end], strings.TrimLeft(msg[end:], ": ")
	return &FieldError{Field: field, Err: errors.New(rest)}
}
