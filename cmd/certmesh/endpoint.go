package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/pki"
)

// probeTimeout bounds each request that asks a wrong endpoint what it is.
const probeTimeout = 2 * time.Second

// explainEndpoint adds to a failed call at a controller URL what is there
// instead when it is not a controller's API: a node's metrics listener
// (plain HTTP) or a router's client listener (TLS that wants a client
// certificate first). Go's own words for these ("server gave HTTP response
// to HTTPS client", "tls: certificate required") do not say what to fix.
func explainEndpoint(err error, urls []string, roots *x509.CertPool) error {
	msg := err.Error()
	plainHTTP := strings.Contains(msg, "server gave HTTP response to HTTPS client")
	wantsCert := strings.Contains(msg, "certificate required")
	if !plainHTTP && !wantsCert {
		return err
	}
	var hints []string
	for _, raw := range urls {
		u, perr := url.Parse(raw)
		if perr != nil || u.Host == "" {
			continue
		}
		switch {
		case plainHTTP:
			if st := metricsStatus(u.Host); st != nil {
				hints = append(hints, fmt.Sprintf("%s is the metrics listener of %s %s (plain HTTP, metrics.listen), not a controller's API", raw, st.Role, st.Node))
			}
		case wantsCert:
			if id, ok := serverID(u.Host, roots); ok && id.Kind == pki.KindRouter {
				hints = append(hints, fmt.Sprintf("%s is router %s's client listener (listen), not a controller's API", raw, id.Name))
			}
		}
	}
	if len(hints) == 0 {
		return err
	}
	return usagef("--controller: %s; give a controller's api.listen address (https, default port 8443) (%v)", strings.Join(hints, "; "), err)
}

// metricsStatus is what the metrics listener at host says it is, or nil.
func metricsStatus(host string) *api.Status {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	return api.ProbeStatus(ctx, host)
}

// serverID returns the SPIFFE ID of the certificate host presents, if it
// verifies against roots.
func serverID(host string, roots *x509.CertPool) (pki.SPIFFEID, bool) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: probeTimeout}, Config: pki.HardenTLS(&tls.Config{RootCAs: roots})}
	if h, _, err := net.SplitHostPort(host); err == nil {
		d.Config.ServerName = h
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return pki.SPIFFEID{}, false
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return pki.SPIFFEID{}, false
	}
	id, err := pki.IDOf(certs[0])
	return id, err == nil
}
