package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/certmesh/certmesh/client"
)

// errNotAdmitted is a router still refusing a certificate when the sync
// timeout ran out.
var errNotAdmitted = errors.New("not admitted")

// connectResult is one router's first admission of a certificate.
type connectResult struct {
	router string
	conn   net.Conn // admitted and still open; the caller closes it
	at     time.Time
	err    error
}

// connectUntilAdmitted connects through router with sess's certificate,
// again every RetryInterval while the router refuses it, until it is
// admitted or SyncTimeout passes. Every completed handshake is recorded in
// handshakes.
func (r *runner) connectUntilAdmitted(ctx context.Context, ctrl, router string, sess *client.Session) connectResult {
	cl, err := client.New(r.cfg.sdk(ctrl, router), sess)
	if err != nil {
		return connectResult{router: router, err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SyncTimeout)
	defer cancel()
	var last error
	for {
		conn, err := r.probe(ctx, cl)
		if err == nil {
			return connectResult{router: router, conn: conn, at: time.Now()}
		}
		last = err
		if !client.IsRefused(err) {
			// Not a refusal: the router or its upstream failed. Counted as
			// such, not waited out.
			return connectResult{router: router, err: err}
		}
		t := time.NewTimer(r.cfg.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			if r.abandoned() {
				return connectResult{router: router, err: ctx.Err()}
			}
			return connectResult{router: router, err: fmt.Errorf("%w within %v: %v", errNotAdmitted, r.cfg.SyncTimeout, last)}
		case <-t.C:
		}
	}
}

// probe makes one connection: the handshake, then the probe and the first
// byte of the upstream's answer, which a refusal replaces with a TLS alert.
func (r *runner) probe(ctx context.Context, cl *client.Client) (net.Conn, error) {
	start := time.Now()
	conn, _, err := cl.Dial(ctx)
	if err != nil {
		return nil, err
	}
	r.stats.handshake.record(time.Since(start))
	conn.SetDeadline(time.Now().Add(r.cfg.CallTimeout))
	if _, err := conn.Write(r.cfg.Probe); err != nil {
		conn.Close()
		return nil, err
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// waitClosed reads conn until it ends, and returns when it did; it gives
// up after SyncTimeout. What the upstream still sends is discarded.
func (r *runner) waitClosed(conn net.Conn) (time.Time, error) {
	conn.SetReadDeadline(time.Now().Add(r.cfg.SyncTimeout))
	_, err := io.Copy(io.Discard, conn)
	at := time.Now()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return at, fmt.Errorf("still open %v after the revocation", r.cfg.SyncTimeout)
	}
	return at, nil
}
