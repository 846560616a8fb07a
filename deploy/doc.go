// Package deploy holds the deployment examples of docs/deploy.md: config
// files for a three-region cluster, systemd units, Prometheus alerting
// rules, a Prometheus scrape configuration and a Grafana dashboard. It has
// no code; its tests load every example with the same loader the binaries
// use, run a controller and a router to check that every metric the rules,
// the dashboard and the docs name exists, and run promtool on the rules,
// the scrape configuration, every dashboard query and the nodes' /metrics,
// so the guide cannot drift from what certmesh accepts and exports.
package deploy
