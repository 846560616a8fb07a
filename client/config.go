package client

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"
)

// Config configures the SDK. It is frozen once passed to a function of the
// package.
type Config struct {
	// Controllers are the controllers' API base URLs
	// (https://host:port), in order of preference; a failed call moves on
	// to the next. Validate refuses any other scheme (ErrInsecureController
	// for http://): every controller call carries a credential.
	Controllers []string
	// Routers are the routers' client addresses (host:port), in order of
	// preference; Connect fails over among them.
	Routers []string
	// RootCAs verifies controllers and routers (ca.pem).
	RootCAs *x509.CertPool
	// ServerName overrides the name a router's certificate is checked
	// against; default the host of its address.
	ServerName string

	// RotateAt is the fraction of a certificate's lifetime after which it
	// is rotated. Default 2/3.
	RotateAt float64
	// RenewBefore, if set, rotates this long before the certificate
	// expires instead (when that is after its issue): a margin in time
	// rather than a fraction, as cert-manager's renewBefore. Default 0
	// (use RotateAt).
	RenewBefore time.Duration
	// RotateJitter spreads rotations by up to ± this fraction of the
	// lifetime, so that clients logged in together do not rotate
	// together. Default 0.05.
	RotateJitter float64
	// RetryMin and RetryMax bound the exponential backoff of rotations and
	// reconnections (with full jitter). Defaults 200ms and 30s.
	RetryMin, RetryMax time.Duration
	// HTTPTimeout bounds one controller call, all controllers tried.
	// Default 10s.
	HTTPTimeout time.Duration
	// AttemptTimeout bounds one attempt at one controller, TLS handshake
	// included: a controller that accepts connections but never answers
	// costs this much, once (it is then asked last for a while). Default
	// 3s.
	AttemptTimeout time.Duration
	// HedgeAfter starts the next controller's attempt when the current
	// one has not answered within it, without abandoning the first (the
	// first answer wins). A hedged login or rotation may leave an unused
	// session or certificate behind at the slower controller, harmless
	// until it expires. Default 1s.
	HedgeAfter time.Duration
	// DialTimeout bounds one router connection attempt, handshake
	// included. Default 5s.
	DialTimeout time.Duration
	// AdmitWait is how long after the TLS handshake Connect waits for a
	// refusal before it reports the connection Connected when the router
	// has sent nothing yet (data from the router is proof of admission at
	// once). A router decides within its pull timeout (2s by default).
	// Default 3s.
	AdmitWait time.Duration

	// Token, if set, returns a fresh login token (an OIDC ID token or a
	// JWT). A Client then logs in again on its own when its session
	// reaches its end, rather than ending (SessionEnded with
	// ReasonExpired); it never does after a revocation, which is an
	// administrator's decision. Default nil: the session's end is final.
	Token TokenSource

	// Clock is the source of time; default the wall clock.
	Clock Clock
	// Rand returns uniform numbers in [0, 1); default a random source.
	Rand func() float64
	// Logger receives the SDK's logs; default none.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults; the caller sets Controllers, Routers
// and RootCAs.
func DefaultConfig() Config {
	return Config{
		RotateAt:       2.0 / 3, // a third of the lifetime to retry in
		RotateJitter:   0.05,
		RetryMin:       200 * time.Millisecond,
		RetryMax:       30 * time.Second,
		HTTPTimeout:    10 * time.Second,
		AttemptTimeout: 3 * time.Second, // a loaded controller's write, not a dead one's
		HedgeAfter:     time.Second,     // well above a healthy call, well below AttemptTimeout
		DialTimeout:    5 * time.Second,
		AdmitWait:      3 * time.Second, // above the router's 2s pull timeout
	}
}

// Validate checks the config and fills the injected defaults.
func (c *Config) Validate() error {
	for _, u := range c.Controllers {
		if err := checkControllerURL(u); err != nil {
			return err
		}
	}
	switch {
	case c.RotateAt <= 0 || c.RotateAt >= 1:
		return fmt.Errorf("client: rotate at %v not in (0, 1)", c.RotateAt)
	case c.RotateJitter < 0 || c.RotateJitter >= c.RotateAt || c.RotateAt+c.RotateJitter >= 1:
		return fmt.Errorf("client: rotate jitter %v out of range", c.RotateJitter)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("client: retry bounds %v..%v", c.RetryMin, c.RetryMax)
	case c.HTTPTimeout <= 0 || c.DialTimeout <= 0 || c.AttemptTimeout <= 0 || c.HedgeAfter <= 0 || c.AdmitWait <= 0:
		return errors.New("client: timeouts must be positive")
	case c.RenewBefore < 0:
		return fmt.Errorf("client: renew before %v is negative", c.RenewBefore)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Rand == nil {
		var mu sync.Mutex
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		c.Rand = func() float64 {
			mu.Lock()
			defer mu.Unlock()
			return r.Float64()
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ErrInsecureController is returned for a controller URL that is not
// https: every call the SDK makes to a controller carries a credential (a
// bearer token, a session or admin certificate), which must never travel
// in clear.
var ErrInsecureController = errors.New("client: controller URL is not https")

// checkControllerURL accepts https://host[:port][/path] only.
func checkControllerURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") {
		return fmt.Errorf("client: controller URL %q is not https://host:port", u)
	}
	if p.Scheme != "https" {
		return fmt.Errorf("%w: %q: tokens and certificates are only sent over TLS", ErrInsecureController, u)
	}
	return nil
}

// Clock is the SDK's source of time.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// backoff returns the wait before retry n (0-based): full jitter over an
// exponential bound, as AWS's architecture blog recommends.
func (c *Config) backoff(n int) time.Duration {
	d := c.RetryMin
	for i := 0; i < n && d < c.RetryMax; i++ {
		d *= 2
	}
	d = min(d, c.RetryMax)
	return time.Duration(float64(d) * (0.5 + 0.5*c.Rand()))
}

// rotationTime is when a certificate received at issued and expiring at
// expires should be rotated: at RotateAt of its lifetime, or RenewBefore
// its expiry if that is set and after issued, moved by up to
// ± RotateJitter of the lifetime.
func (c *Config) rotationTime(issued, expires time.Time) time.Time {
	life := expires.Sub(issued)
	if life <= 0 {
		return issued
	}
	frac := c.RotateAt
	if c.RenewBefore > 0 && c.RenewBefore < life {
		frac = float64(life-c.RenewBefore) / float64(life)
	}
	frac += c.RotateJitter * (2*c.Rand() - 1)
	frac = min(max(frac, 0), 1)
	return issued.Add(time.Duration(frac * float64(life)))
}
