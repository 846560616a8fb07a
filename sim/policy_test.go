package sim

import "testing"

// policyTopology has policy changes in its mix and a region cut: every
// strategy must close access as it closes revocations.
const policyTopology = `
duration: 20s
regions:
  - {name: a, controllers: 1, routers: 3}
  - {name: b, controllers: 1, routers: 3}
  - {name: c, controllers: 1, routers: 3}
latency: {intra: 1ms, links: [[a, b, 40ms], [b, c, 60ms], [a, c, 90ms]]}
workload: {rate: 40/s, mix: {issue: 60, rotate: 15, revoke: 10, policy: 15}}
faults:
  - {at: 5s, for: 3s, partition: [[a], [b, c]]}
`

// With policy changes in the workload, the mesh admits no client once the
// change that removed its access was reachable for a second and refuses
// none whose access stands; every strategy reports the delays of each kind
// of write (the gossip baseline admits revoked and removed clients alike
// through the cut, as it does without policies).
func TestPolicyChangesCloseAccessAndAreReportedByKind(t *testing.T) {
	for _, strategy := range []string{"mesh", "gossip", "raft"} {
		t.Run(strategy, func(t *testing.T) {
			res, err := Run(mustTopology(t, policyTopology), strategy, DefaultConfig().withSeed(3))
			if err != nil {
				t.Fatal(err)
			}
			if strategy == "mesh" && (res.UnauthorizedAccepts != 0 || res.RevokedAccepts != 0 || res.FalseRejects != 0) {
				t.Errorf("unauthorized_accepts %d, revoked_accepts %d, false_rejects %d: want 0",
					res.UnauthorizedAccepts, res.RevokedAccepts, res.FalseRejects)
			}
			if res.DeniedConnects == 0 {
				t.Error("no connect tried a certificate whose access was removed")
			}
			for _, kind := range []string{"issue", "rotate", "revoke", "policy"} {
				if k, ok := res.ByKind[kind]; !ok || k.Pairs == 0 {
					t.Errorf("by_kind lacks %s: %+v", kind, res.ByKind)
				}
			}
			if !res.Converged {
				t.Error("not converged")
			}
			t.Logf("%s: policy sync p99 %.1f ms (revoke %.1f ms), excess p99 %.1f ms, %d denied connects",
				strategy, res.ByKind["policy"].SyncDelayMs.P99, res.ByKind["revoke"].SyncDelayMs.P99,
				res.ByKind["policy"].ExcessMs.P99, res.DeniedConnects)
		})
	}
}
