// Package reliability holds certmesh's cross-package fault and attack
// tests: whole clusters (devcluster: 3 controllers and 6 routers over real
// memberlist on loopback) put through gossip key rotation, a compromised
// controller, a controller clock far in the future, and floods of garbage
// and stalled connections. It has no code of its own, only tests; each
// test states the property it checks and logs the figures that
// docs/reliability.md reports.
//
//	go test -race -count=1 -v ./reliability/
package reliability
