// Package bench is the load behind `certmesh bench`: it drives a running
// certmesh cluster from outside, as its users do, through the client SDK
// (package client) and the HTTP API only, and measures what they feel.
//
// Each of Config.Clients workers repeats one client's life until the run's
// duration is over, each life started at the run's target rate (or at once
// when the rate is 0):
//
//  1. log in at the next controller of Config.Controllers (round robin):
//     login latency;
//  2. connect through every router of Config.Routers at once, each retried
//     while it refuses: the time from the login's answer to the first
//     admission at that router (the sync delay a user feels, pulls on miss
//     included), and the TLS handshake of every connection;
//  3. rotate at the next controller, and connect again with the new
//     certificate: rotation latency and the time to its first admission;
//  4. revoke the session at the next controller (with the admin
//     certificate, or by the session's own logout when none is given), and
//     wait for the router to close the connection kept up since step 2:
//     revocation latency and revoke-to-close.
//
// A connection counts as admitted once the upstream behind the router
// answers Config.Probe (a router judges a certificate after the TLS 1.3
// handshake, so only a read tells an admission from a refusal); the upstream
// must answer it: an HTTP server or an echo does.
//
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go)
// in microseconds, from 1 µs to an hour at 3 significant digits, and are
// reported as p50/p90/p99/max in milliseconds.
package bench
