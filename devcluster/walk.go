package devcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// syncTimeout bounds how long the walk waits for a change to reach every
// router: far above what loopback needs, so a miss is a real failure.
const syncTimeout = 10 * time.Second

// Walk takes one client through login at the first region's controller,
// an immediate connect through a router of the second region, access to a
// service by name that a policy grants and its loss when the policy is
// removed (walkAccess), a rotation
// at the second controller with the connection kept up, and a revocation at
// the third controller. For each change it writes one line per router,
//
//	sync <router> <issue|policy|rotate|revoke> <milliseconds>
//
// the time from the client holding the controller's acknowledgement to the
// router holding the change (0 when the router had it first), then whether
// the live connection was closed. It returns an error naming the
// first step that did not hold.
func (c *Cluster) Walk(ctx context.Context, w io.Writer) error {
	if len(c.Controllers) < 3 || len(c.Routers) < 3 {
		return errors.New("devcluster: the walk needs three controllers and three routers")
	}
	roots, err := pki.LoadCerts(filepath.Join(c.PKIDir, pki.CACertFile))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	ctrl := func(i int) client.Config {
		cfg := client.DefaultConfig()
		cfg.RootCAs = pool
		cfg.Controllers = []string{"https://" + c.Controllers[i].APIAddr()}
		return cfg
	}
	perRegion := len(c.Routers) / len(c.Controllers)
	far := c.Routers[perRegion]       // first router of the second region
	farther := c.Routers[2*perRegion] // first router of the third region

	// 1. Login, and connect at once through another region's router.
	token, err := c.OIDC.Mint("alice", 10*time.Minute)
	if err != nil {
		return err
	}
	sess, err := client.Login(ctx, ctrl(0), token)
	acked := time.Now()
	if err != nil {
		return fmt.Errorf("login at %s: %w", c.Controllers[0].Author().Name, err)
	}
	fmt.Fprintf(w, "login alice at %s: session %s, certificate %s\n", c.Controllers[0].Author().Name, sess.ID, sess.Serial)
	live, err := c.connect(ctx, ctrl(0), sess, far.Addr().String())
	if err != nil {
		return fmt.Errorf("connect via %s right after login: %w", far.Mesh.Name(), err)
	}
	defer live.Close()
	fmt.Fprintf(w, "connect via %s right after login: admitted\n", far.Mesh.Name())
	serial, err := crdt.ParseSerial(sess.Serial)
	if err != nil {
		return err
	}
	if err := c.printSync(ctx, w, "issue", acked, func(r crdt.Record) bool {
		cr, ok := r.(*crdt.CertRecord)
		return ok && cr.Serial == serial
	}); err != nil {
		return err
	}
	if err := c.walkAccess(ctx, w, ctrl, sess, far.Addr().String(), far.Mesh.Name()); err != nil {
		return err
	}

	// 2. Rotate at the second controller; the live connection stays up.
	rotated, err := client.RotateSession(ctx, ctrl(1), sess)
	acked = time.Now()
	if err != nil {
		return fmt.Errorf("rotate at %s: %w", c.Controllers[1].Author().Name, err)
	}
	fmt.Fprintf(w, "rotate at %s: certificate %s replaces %s\n", c.Controllers[1].Author().Name, rotated.Serial, sess.Serial)
	newSerial, err := crdt.ParseSerial(rotated.Serial)
	if err != nil {
		return err
	}
	if err := c.printSync(ctx, w, "rotate", acked, func(r crdt.Record) bool {
		cr, ok := r.(*crdt.CertRecord)
		return ok && cr.Serial == newSerial
	}); err != nil {
		return err
	}
	if err := live.RoundTrip(); err != nil {
		return fmt.Errorf("live connection after rotation: %w", err)
	}
	fmt.Fprintln(w, "live connection after rotation: still up")
	second, err := c.connect(ctx, ctrl(1), rotated, farther.Addr().String())
	if err != nil {
		return fmt.Errorf("connect with the rotated certificate via %s: %w", farther.Mesh.Name(), err)
	}
	second.Close()
	fmt.Fprintf(w, "connect with the rotated certificate via %s: admitted\n", farther.Mesh.Name())

	// 3. Revoke the session at the third controller: the live connection
	// through the second region's router closes.
	admin, err := c.admin(ctrl(2))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.Revoke(ctx, client.Revocation{SessionID: sess.ID}); err != nil {
		return fmt.Errorf("revoke at %s: %w", c.Controllers[2].Author().Name, err)
	}
	revokedAt := time.Now()
	fmt.Fprintf(w, "revoke session %s at %s\n", sess.ID, c.Controllers[2].Author().Name)
	sid, err := crdt.ParseSessionID(sess.ID)
	if err != nil {
		return err
	}
	if err := c.printSync(ctx, w, "revoke", revokedAt, func(r crdt.Record) bool {
		rr, ok := r.(*crdt.RevocationRecord)
		return ok && rr.Target == crdt.RevokeSession && rr.Session == sid
	}); err != nil {
		return err
	}
	closedAfter, closed := live.WaitClosed(syncTimeout)
	if !closed {
		fmt.Fprintf(w, "live connection closed: no, still up %v after the revocation\n", syncTimeout)
		return errors.New("the revoked session's live connection was not closed")
	}
	fmt.Fprintf(w, "live connection closed: yes, %.1f ms after the revocation was acknowledged\n", ms(closedAfter.Sub(revokedAt)))
	if conn, err := c.connect(ctx, ctrl(1), rotated, far.Addr().String()); err == nil {
		conn.Close()
		return errors.New("a new connection with the revoked session's certificate was admitted")
	}
	fmt.Fprintf(w, "connect with the revoked session's certificate via %s: refused\n", far.Mesh.Name())
	return nil
}

// printSync waits until every router holds a record matching match, and
// writes how long after acked each one got it.
func (c *Cluster) printSync(ctx context.Context, w io.Writer, change string, acked time.Time, match func(crdt.Record) bool) error {
	timeout := time.NewTimer(syncTimeout)
	defer timeout.Stop()
	for _, r := range c.Routers {
		name := r.Mesh.Name()
		for {
			at, rec, changed := c.appliedAt(name, match)
			if rec != nil {
				fmt.Fprintf(w, "sync %s %s %.1f\n", name, change, max(0, ms(at.Sub(acked))))
				break
			}
			select {
			case <-changed:
			case <-timeout.C:
				return fmt.Errorf("%s did not reach %s within %v", change, name, syncTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// appliedAt returns when router applied the first record matching match,
// or a channel closed at the next record any router applies.
func (c *Cluster) appliedAt(router string, match func(crdt.Record) bool) (time.Time, crdt.Record, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.applied[router] {
		if match(a.rec) {
			return a.at, a.rec, nil
		}
	}
	return time.Time{}, nil, c.changed
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (c *Cluster) admin(cfg client.Config) (*client.Admin, error) {
	dir := filepath.Join(c.PKIDir, pki.DefaultAdmin)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	return client.NewAdmin(cfg, cert)
}

// connect dials router with the session's certificate and makes one
// request to the upstream through it.
func (c *Cluster) connect(ctx context.Context, cfg client.Config, s *client.Session, router string) (*LiveConn, error) {
	cfg.Routers = []string{router}
	return Connect(ctx, cfg, s)
}
