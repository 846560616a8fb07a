package devcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/certmesh/certmesh/client"
)

// LiveConn is a keep-alive HTTP connection to the cluster's echo upstream
// through a router, as a client application would hold one. The walk and
// the reliability tests use it to see a revocation close a live
// connection.
type LiveConn struct {
	cl   *client.Client
	conn net.Conn
	br   *bufio.Reader
}

// Connect dials a router of cfg.Routers with the session's certificate and
// makes one request through it: in TLS 1.3 a refusal shows only once the
// client reads.
func Connect(ctx context.Context, cfg client.Config, s *client.Session) (*LiveConn, error) {
	cl, err := client.New(cfg, s)
	if err != nil {
		return nil, err
	}
	conn, _, err := cl.Dial(ctx)
	if err != nil {
		cl.Close()
		return nil, err
	}
	lc := &LiveConn{cl: cl, conn: conn, br: bufio.NewReader(conn)}
	if err := lc.RoundTrip(); err != nil {
		cl.Close()
		return nil, err
	}
	return lc, nil
}

// RoundTrip makes one request to the upstream over the connection.
func (l *LiveConn) RoundTrip() error {
	l.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer l.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(l.conn, "GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(l.br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream answered %s", resp.Status)
	}
	return nil
}

// WaitClosed reports whether the router closed the connection within d,
// and when it saw the close (or gave up).
func (l *LiveConn) WaitClosed(d time.Duration) (time.Time, bool) {
	l.conn.SetReadDeadline(time.Now().Add(d))
	_, err := l.br.ReadByte()
	at := time.Now()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		return at, false
	}
	return at, true
}

// Close closes the connection and its client.
func (l *LiveConn) Close() error {
	err := l.conn.Close()
	l.cl.Close()
	return err
}
