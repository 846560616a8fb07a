package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Config is the `auth` section of a controller's configuration (docs/deploy.md). Paths in it are used as given: the config loader resolves them
// relative to the config file before calling New.
type Config struct {
	OIDC []OIDCConfig `yaml:"oidc"`
	JWT  []JWTConfig  `yaml:"jwt"`
}

// OIDCConfig is one OpenID Connect issuer, `auth.oidc[]`.
type OIDCConfig struct {
	// Name names the entry; with more than one auth entry it is the
	// namespace of its identities ("<name>:<sub>") unless IdentityNamespace
	// is set. Default: the host name of Issuer.
	Name string `yaml:"name"`
	// Issuer is the issuer URL; discovery reads
	// <Issuer>/.well-known/openid-configuration, whose issuer must equal it.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's aud values (the client id).
	Audience string `yaml:"audience"`
	// IdentityClaim names the claim that becomes the certmesh identity;
	// default "sub".
	IdentityClaim string `yaml:"identity_claim"`
	// CAFile, when set, is a PEM bundle of the CA certificates that this
	// issuer's TLS certificate (discovery and jwks_uri) must chain to,
	// instead of the system roots: a provider behind a private CA.
	CAFile string `yaml:"ca_file"`
	// RolesClaim names the claim whose value (a string or a list of
	// strings) gives the session its roles at login; empty: none.
	RolesClaim string `yaml:"roles_claim"`
	// IdentityNamespace, when set, prefixes this entry's identities
	// ("<namespace>:<claim>"), even when it is the only entry. Entries that
	// set the same value share identities: an operator's explicit mapping
	// of two sources onto one set of people. Default: Name when the
	// controller has more than one auth entry, else none (the claim value
	// is the identity). 1 to 63 letters, digits, '.', '-', '_'.
	IdentityNamespace string `yaml:"identity_namespace"`
}

// JWTConfig is one external JWT signer, `auth.jwt[]`.
type JWTConfig struct {
	// Name identifies the signer in logs and in Identity.Method
	// ("jwt:<name>"); with more than one auth entry it is also the
	// namespace of its identities ("<name>:<sub>") unless IdentityNamespace
	// is set.
	Name string `yaml:"name"`
	// Issuer is the iss claim of its tokens.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's aud values.
	Audience string `yaml:"audience"`
	// KeysFile holds PEM public keys ("PUBLIC KEY", "RSA PUBLIC KEY" or
	// "CERTIFICATE" blocks; a "kid" PEM header names a key). Exactly one of
	// KeysFile and JWKSURL is set.
	KeysFile string `yaml:"keys_file"`
	// JWKSURL is fetched when a token names a key id not yet seen, and
	// periodically (Options.KeyRefreshMax).
	JWKSURL string `yaml:"jwks_url"`
	// CAFile is as in OIDCConfig, for JWKSURL.
	CAFile string `yaml:"ca_file"`
	// IdentityClaim names the claim that becomes the certmesh identity;
	// default "sub".
	IdentityClaim string `yaml:"identity_claim"`
	// RolesClaim is as in OIDCConfig.
	RolesClaim string `yaml:"roles_claim"`
	// IdentityNamespace is as in OIDCConfig.
	IdentityNamespace string `yaml:"identity_namespace"`
}

// DefaultIdentityClaim is the claim used when identity_claim is empty.
const DefaultIdentityClaim = "sub"

// ConfigError is the error Validate returns: the YAML path of the field at
// fault and what is wrong with it.
type ConfigError struct {
	Field string // e.g. "auth.oidc[0].issuer"
	Msg   string // e.g. "is required"
}

func (e *ConfigError) Error() string { return "auth: " + e.Field + ": " + e.Msg }

// Validate reports the first configuration error as a *ConfigError.
func (c Config) Validate() error {
	fail := func(field, format string, args ...any) error {
		return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	issuers := make(map[string]string)
	claimIssuer := func(field, iss string) error {
		if prev, dup := issuers[iss]; dup {
			return fail(field, "issuer %q is already configured at %s", iss, prev)
		}
		issuers[iss] = field
		return nil
	}
	for i, o := range c.OIDC {
		f := fmt.Sprintf("auth.oidc[%d]", i)
		if err := checkHTTPURL(o.Issuer); err != nil {
			return fail(f+".issuer", "%v", err)
		}
		if o.Audience == "" {
			return fail(f+".audience", "is required")
		}
		if err := claimIssuer(f+".issuer", o.Issuer); err != nil {
			return err
		}
	}
	names := make(map[string]bool)
	for i, j := range c.JWT {
		f := fmt.Sprintf("auth.jwt[%d]", i)
		switch {
		case j.Name == "":
			return fail(f+".name", "is required")
		case names[j.Name]:
			return fail(f+".name", "%q is used twice", j.Name)
		case j.Issuer == "":
			return fail(f+".issuer", "is required")
		case j.Audience == "":
			return fail(f+".audience", "is required")
		case (j.KeysFile == "") == (j.JWKSURL == ""):
			return fail(f, "exactly one of keys_file and jwks_url is required")
		}
		names[j.Name] = true
		if j.JWKSURL != "" {
			if err := checkHTTPURL(j.JWKSURL); err != nil {
				return fail(f+".jwks_url", "%v", err)
			}
		}
		if err := claimIssuer(f+".issuer", j.Issuer); err != nil {
			return err
		}
	}
	_, _, err := c.namespaces()
	return err
}

func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an http(s) URL without query or fragment", s)
	}
	return nil
}

// Options are the verifier's operational settings, not part of the config
// file. The zero value of each field selects its default.
type Options struct {
	// Now is the clock for exp and nbf; default time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp and nbf; default 30s.
	// Negative means none.
	Leeway time.Duration
	// HTTPClient fetches discovery documents and key sets; default a client
	// with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives discovery progress; default discards.
	Logger *slog.Logger
	// DiscoveryBackoffMin and DiscoveryBackoffMax bound the wait between
	// discovery attempts of an unreachable OIDC issuer, doubling from min to
	// max; defaults 500ms and 30s.
	DiscoveryBackoffMin, DiscoveryBackoffMax time.Duration
	// JWKSRefreshInterval is the least time between two fetches of an
	// issuer's key set (OIDC jwks_uri or a JWT signer's jwks_url) caused by
	// unknown key ids, so that a flood of tokens with made-up kids does not
	// become a flood of fetches. A token of a key published within this
	// interval of the last fetch is refused until it passes. Default 1s;
	// negative means no limit.
	JWKSRefreshInterval time.Duration
	// KeyRefreshMin and KeyRefreshMax bound how long a fetched key set is
	// trusted before it is fetched again: the provider's Cache-Control
	// max-age, clamped to [min, max] (max when the answer has no max-age).
	// A key the provider withdraws is refused within KeyRefreshMax of its
	// withdrawal, on every controller that the provider answers. A failed
	// refresh keeps the cached keys and is retried after KeyRefreshMin.
	// Defaults 1m and 15m.
	KeyRefreshMin, KeyRefreshMax time.Duration
}

// Defaults of Options.
const (
	DefaultLeeway              = 30 * time.Second
	DefaultHTTPTimeout         = 10 * time.Second
	DefaultDiscoveryBackoffMin = 500 * time.Millisecond
	DefaultDiscoveryBackoffMax = 30 * time.Second
	DefaultJWKSRefreshInterval = time.Second
	DefaultKeyRefreshMin       = time.Minute
	DefaultKeyRefreshMax       = 15 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.Leeway == 0:
		o.Leeway = DefaultLeeway
	case o.Leeway < 0:
		o.Leeway = 0
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DiscoveryBackoffMin <= 0 {
		o.DiscoveryBackoffMin = DefaultDiscoveryBackoffMin
	}
	if o.DiscoveryBackoffMax <= 0 {
		o.DiscoveryBackoffMax = DefaultDiscoveryBackoffMax
	}
	if o.DiscoveryBackoffMax < o.DiscoveryBackoffMin {
		o.DiscoveryBackoffMax = o.DiscoveryBackoffMin
	}
	switch {
	case o.JWKSRefreshInterval == 0:
		o.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	case o.JWKSRefreshInterval < 0:
		o.JWKSRefreshInterval = 0
	}
	if o.KeyRefreshMin <= 0 {
		o.KeyRefreshMin = DefaultKeyRefreshMin
	}
	if o.KeyRefreshMax <= 0 {
		o.KeyRefreshMax = DefaultKeyRefreshMax
	}
	if o.KeyRefreshMax < o.KeyRefreshMin {
		o.KeyRefreshMax = o.KeyRefreshMin
	}
	return o
}
