// Package deploy holds the deployment examples of docs/deploy.md: config
// files for a three-region cluster, systemd units and Prometheus alerting
// rules. It has no code; its test loads every example with the same loader
// the binaries use, so the guide cannot drift from what certmesh accepts.
package deploy
