package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// DialContext dials a router for a connection to its upstream, with the
// signature of net.Dialer.DialContext and http.Transport.DialContext.
// network must be a TCP one; addr is not dialed (the router chooses the
// upstream), only the routers of the config are. A refusal shows as a
// *RefusedError and reaches the client's state as with Dial.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("client: dial %s %s: only tcp goes through a router", network, addr)
	}
	conn, _, err := c.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// HTTPTransport returns an http.Transport whose connections go through the
// routers (DialContext): use http:// URLs, the router's TLS protects the
// hop and the router's upstream serves them. Connections it pools end at
// Close.
func (c *Client) HTTPTransport() *http.Transport {
	return &http.Transport{
		DialContext:           c.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
}

// HTTPClient returns an http.Client over HTTPTransport.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: c.HTTPTransport()}
}
