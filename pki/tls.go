package pki

import "crypto/tls"

// MinTLSVersion is the only TLS version certmesh speaks, as a server (the
// controller API, the router's client listener) and as a client (the SDK,
// the CLI).
//
// TLS 1.3 only, rather than TLS 1.2 restricted to ECDHE with AEAD suites:
//   - every TLS 1.3 suite is an AEAD with ephemeral key exchange: no CBC,
//     no SHA-1 MAC, no RSA key transport, no renegotiation, nothing to
//     keep a list of (Go does not let TLS 1.3 suites be configured);
//   - in TLS 1.2 the client certificate crosses the network in clear, and
//     certmesh's carry the identity as CN and URI SAN: a passive observer
//     would learn who rotates, logs out or acts as admin. TLS 1.3 encrypts it;
//   - it excludes nobody certmesh serves: a client must already speak
//     TLS 1.3 to a router to use its certificate at all, and the admin
//     tools are certmesh's own (Go has TLS 1.3 since 1.12, OpenSSL since
//     1.1.1, curl with either).
const MinTLSVersion = tls.VersionTLS13

// HardenTLS sets c's protocol version range to TLS 1.3 only, whatever it
// held, and returns c: one place for every listener and client of certmesh
// to get its TLS floor from. Metrics listeners are plain HTTP by design
// (loopback or a private interface) and carry no credentials.
func HardenTLS(c *tls.Config) *tls.Config {
	c.MinVersion = MinTLSVersion
	c.MaxVersion = 0 // the newest Go knows
	// TLS 1.3 suites are fixed; a list here would only ever apply to
	// versions below the floor.
	c.CipherSuites = nil
	return c
}
