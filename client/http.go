package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/certmesh/certmesh/pki"
)

// DialContext dials through the routers the service addr names, with the
// signature of net.Dialer.DialContext and http.Transport.DialContext.
// network must be a TCP one. addr is not dialed (only the routers of the
// config are, and its port is not used); its host chooses the service:
//
//   - <service>.svc.<trust-domain>, in the session's trust domain: that
//     service, named by TLS SNI, the router verified under that name. So
//     an http.Client (HTTPClient) reaches https://echo.svc.certmesh/ by
//     name, whatever Config.ServerName says.
//   - any other host: the config's choice, as Dial makes it (the service
//     of Config.ServerName, or the router's default service).
//
// A refusal shows as a *RefusedError (IsAccessDenied for a service the
// session may not reach) and reaches the client's state as with Dial.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("client: dial %s %s: only tcp goes through a router", network, addr)
	}
	conn, _, err := c.dial(ctx, c.serviceHost(addr), nil)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// serviceHost is the TLS SNI addr names: its host if that is a service
// host of the session's trust domain, else empty (the config's choice).
func (c *Client) serviceHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	s := c.Session()
	if s == nil || s.Leaf() == nil {
		return ""
	}
	id, err := pki.IDOf(s.Leaf())
	if err != nil {
		return ""
	}
	name, ok := pki.ServiceOfHost(host, id.TrustDomain)
	if !ok {
		return ""
	}
	return pki.ServiceHost(name, id.TrustDomain)
}

// HTTPTransport returns an http.Transport whose connections go through the
// routers (DialContext), for http:// and https:// URLs alike: the
// router's TLS, verified under the service's name, is the https, and the
// service behind the router speaks plain HTTP. A URL's host chooses the
// service as DialContext says. Connections it pools end at Close. An
// upstream that speaks TLS itself is reached with a Transport of one's
// own whose DialContext (only) is c.DialContext: its TLS then runs inside
// the router's.
func (c *Client) HTTPTransport() *http.Transport {
	return &http.Transport{
		DialContext:           c.DialContext,
		DialTLSContext:        c.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// HTTPClient returns an http.Client over HTTPTransport.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: c.HTTPTransport()}
}
