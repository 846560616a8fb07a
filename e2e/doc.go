// Package e2e holds certmesh's end-to-end tests. They run the real
// certmesh binary, built once per test run with CGO_ENABLED=0, the way an
// operator runs it: from `certmesh pki init` output and config files, as
// separate OS processes on 127.0.0.1 or as containers on a private Docker
// network, driven from the test process through the CLI (login, rotate,
// revoke, status) and the client SDK. The package has no code of its own:
// everything is in _test.go files.
//
// The tests:
//
//   - TestProcessCluster: 3 controllers and 3 routers in 3 regions as OS
//     processes. Login at one controller (OIDC and JWT tokens), an
//     immediate connect through a router in another region, rotation with
//     the connection kept up, revocation at a second controller closing the
//     live connection, `certmesh status` (table and --json), every metric
//     name the nodes promise on controllers and routers, and a controller
//     killed with SIGKILL: logins go on at the others, and once restarted it
//     catches up (same digest) and its writes work.
//   - TestProcessAccess: the same process cluster with services, policies
//     and identity roles set by the CLI: curl and openssl reach two
//     services through one router by SNI (<service>.svc.certmesh),
//     verifying the router's certificate, a client no policy grants gets
//     the access_denied alert, and a policy removed at one region's
//     controller closes a live connection at another region's router while
//     a connection another policy grants stays up.
//   - TestDockerCluster: the same cluster as containers built FROM scratch
//     (docker/Dockerfile) and run by docker/compose.yml, each with its own
//     address on a private bridge network that the test reaches directly;
//     login, connect through a router in another container, a service
//     reached by SNI whose policy, removed in another region, closes the
//     connection, revoke, the live connection closed. Skips where no Docker daemon answers.
//   - TestChaos: a steady load of logins, rotations and revocations while
//     nodes and whole regions are cut off (docker network disconnect),
//     paused, killed with SIGKILL and restarted, every controller at once
//     included. At the end every acknowledged write is on every node, no
//     revoked certificate is admitted by any router, and no dot was reused
//     (version vectors only grow, and the records held equal the seqs
//     written). It runs on the containers where a Docker daemon answers,
//     and otherwise on OS processes (SIGKILL, SIGSTOP/SIGCONT, no network
//     cuts). It logs the measured recovery times: from each heal until
//     every node holds every write acknowledged before it (data), and
//     until every node sees every other alive again (members).
//
// Run them with
//
//	go test ./e2e/                              # all, 2 to 3 minutes
//	go test ./e2e/ -run TestProcessCluster -v   # one, with its timings
//	CERTMESH_E2E_CHAOS=process go test ./e2e/ -run TestChaos -v
//
// CERTMESH_E2E_CHAOS selects the chaos backend (docker or process; default
// docker when a daemon answers). CERTMESH_E2E_BINARY tests a prebuilt
// static certmesh binary instead of building one. -short skips the Docker
// tests and the chaos test. Under -race the subprocesses are built without
// the race detector; only the test driver is instrumented.
//
// Files: harness_test.go holds what both backends share (the binary, the
// PKI, node configs, HTTP probes); process_harness_test.go runs nodes as OS
// processes and docker_harness_test.go as containers; the tests are in
// process_cluster_test.go, process_access_test.go, docker_cluster_test.go and chaos_test.go.
//
// Each node's stderr goes to a file in the test's temporary directory; a
// failing test prints the tail of each. Every process and container is
// stopped and removed in t.Cleanup, whatever happens.
package e2e
