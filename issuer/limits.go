package issuer

import (
	"crypto/x509"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/certmesh/certmesh/crdt"
)

// ipLimiter is the per-source-IP rate limit of the API: rate requests per
// second with a burst of twice that (package api).
type ipLimiter struct {
	rate  rate.Limit
	burst int

	mu        sync.Mutex
	m         map[string]*ipEntry // guarded by mu
	lastSweep time.Time           // guarded by mu
}

type ipEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

// Limits on the limiter's memory: past sweepAbove entries, those idle for
// idleAfter (by then their bucket is full again) are dropped, at most once
// per sweepEvery.
const (
	sweepAbove = 4096
	sweepEvery = 10 * time.Second
	idleAfter  = time.Minute
)

// newIPLimiter returns a limiter of perSecond requests per IP, or nil (no
// limit) when perSecond is 0.
func newIPLimiter(perSecond float64) *ipLimiter {
	if perSecond <= 0 {
		return nil
	}
	burst := int(2 * perSecond)
	if burst < 1 {
		burst = 1
	}
	return &ipLimiter{rate: rate.Limit(perSecond), burst: burst, m: make(map[string]*ipEntry)}
}

// allow reports whether a request from ip at now is within the limit.
func (l *ipLimiter) allow(ip string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[ip]
	if e == nil {
		if len(l.m) >= sweepAbove && now.Sub(l.lastSweep) >= sweepEvery {
			l.lastSweep = now
			for k, v := range l.m {
				if now.Sub(v.seen) >= idleAfter {
					delete(l.m, k)
				}
			}
		}
		e = &ipEntry{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[ip] = e
	}
	e.seen = now
	return e.lim.AllowN(now, 1)
}

// intermediates are the controller intermediates known from signer
// records, used to build client chains sent without their intermediate.
type intermediates struct {
	mu    sync.Mutex
	byKey map[[32]byte]*x509.Certificate // guarded by mu
	pool  *x509.CertPool                 // guarded by mu; nil when stale
}

func newIntermediates() *intermediates {
	return &intermediates{byKey: make(map[[32]byte]*x509.Certificate)}
}

func (i *intermediates) add(r *crdt.SignerRecord) {
	if r.Revoked || len(r.Cert) == 0 {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.byKey[r.KeyID]; ok {
		return
	}
	cert, err := x509.ParseCertificate(r.Cert)
	if err != nil || !cert.IsCA {
		return // a verified signer record carries a CA; ignore anything else
	}
	i.byKey[r.KeyID] = cert
	i.pool = nil
}

// with returns a pool of the known intermediates plus extra (what the
// client sent). The roots, not this pool, decide trust.
func (i *intermediates) with(extra []*x509.Certificate) *x509.CertPool {
	i.mu.Lock()
	if i.pool == nil {
		i.pool = x509.NewCertPool()
		for _, c := range i.byKey {
			i.pool.AddCert(c)
		}
	}
	p := i.pool
	i.mu.Unlock()
	if len(extra) == 0 {
		return p
	}
	p = p.Clone()
	for _, c := range extra {
		p.AddCert(c)
	}
	return p
}
