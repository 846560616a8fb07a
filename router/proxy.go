package router

import (
	"errors"
	"io"
	"net"
)

// copyBufSize is the buffer of one copy direction. A live connection holds
// two for its lifetime, so it is kept well below io.Copy's 32 KiB: with
// thousands of connections that is the difference between tens and
// hundreds of megabytes.
const copyBufSize = 8 << 10

// proxy connects c to the upstream and copies both ways until both are
// done, handling half-close: a client's close_notify or FIN becomes a FIN
// to the upstream and the other direction goes on, and the reverse. It
// returns why the connection ended and leaves both sockets closed.
func (r *Router) proxy(c *liveConn) string {
	d := net.Dialer{Timeout: r.cfg.UpstreamDialTimeout}
	up, err := d.DialContext(r.ctx, "tcp", c.address)
	if err != nil {
		r.log.Warn("router: upstream unreachable", "upstream", c.address, "service", c.service, "err", err)
		c.kill(closeNoDial)
		reason, _ := c.killReason()
		return reason
	}
	if !c.setUpstream(up) {
		up.Close()
		reason, _ := c.killReason()
		return reason
	}

	// Upstream to client, in its own goroutine, owned and awaited here.
	downDone := make(chan error, 1)
	go func() {
		err := copyData(c.tls, up)
		if err == nil {
			// The upstream finished sending: tell the client
			// (close_notify, then FIN), keep reading from it.
			c.tls.CloseWrite()
			closeWrite(c.raw)
		} else {
			c.raw.Close()
		}
		downDone <- err
	}()

	// Client to upstream, here.
	upErr := copyData(up, c.tls)
	if upErr == nil {
		closeWrite(up)
	} else {
		up.Close()
	}
	downErr := <-downDone
	c.raw.Close()
	up.Close()

	if reason, killed := c.killReason(); killed {
		return reason
	}
	if upErr != nil || downErr == nil {
		return closeClient
	}
	return closeUpstream
}

// copyData copies src to dst until src ends. It returns nil when src ended
// cleanly (EOF) and the error otherwise.
func copyData(dst io.Writer, src io.Reader) error {
	buf := make([]byte, copyBufSize)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return rerr
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
