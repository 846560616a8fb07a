package sim

import (
	"testing"
	"time"
)

// refusingStrategy is the direct strategy whose controllers named in refuse
// refuse every write (of kind only, if set), as a controller with a skewed
// clock does.
type refusingStrategy struct {
	direct directStrategy
	refuse map[string]bool
	kind   WriteKind
}

type refusingNode struct {
	directNode
	refuse bool
	kind   WriteKind
}

func (s *refusingStrategy) NewNode(env *Env) Node {
	return &refusingNode{directNode{s: &s.direct, env: env}, s.refuse[env.Info().Name], s.kind}
}

func (n *refusingNode) Write(now time.Duration, w *Write) {
	if n.refuse && (n.kind == 0 || n.kind == w.Kind) {
		n.env.Refused(w.ID)
		return
	}
	n.directNode.Write(now, w)
}

func runRefusing(t *testing.T, yaml string, kind WriteKind, refuse ...string) (*run, *Result) {
	t.Helper()
	s := &refusingStrategy{direct: directStrategy{size: 300}, refuse: map[string]bool{}, kind: kind}
	for _, name := range refuse {
		s.refuse[name] = true
	}
	r, err := newRun(mustTopology(t, yaml), "refusing", func(*Cluster) (Strategy, error) { return s, nil }, DefaultConfig().withSeed(1))
	if err != nil {
		t.Fatal(err)
	}
	r.start()
	r.runUntil(r.end)
	return r, r.result()
}

// twoControllers: a client in a has its controller 1ms away and b's 50ms
// further; one in b the other way round.
const twoControllers = `
duration: 10s
regions:
  - {name: a, controllers: 1, routers: 2}
  - {name: b, controllers: 1, routers: 2}
latency: {intra: 1ms, links: [[a, b, 50ms]]}
workload: {rate: 2/s, mix: {issue: 70, rotate: 20, revoke: 10}}
`

// A refused request goes back to the client, which sends it to the next
// nearest controller: acknowledged there one refusal and one request later.
func TestRefusedWriteFailsOverToTheNextController(t *testing.T) {
	r, res := runRefusing(t, twoControllers, 0, "controller/a/0")
	if res.Undelivered != 0 || !res.Converged || res.WritesUnavailable != 0 || res.FalseRejects != 0 {
		t.Fatalf("undelivered %d converged %v unavailable %d false rejects %d",
			res.Undelivered, res.Converged, res.WritesUnavailable, res.FalseRejects)
	}
	b, _ := r.cl.NodeByName("controller/b/0")
	refusedInA := 0
	for i := range r.writes {
		ws := &r.writes[i]
		if ws.w.Controller != b || ws.acked < 0 {
			t.Fatalf("write %d acknowledged at %v by %s", i, ws.acked, r.cl.Nodes[ws.w.Controller].Name)
		}
		if len(ws.tried) == 0 {
			continue // a client in b
		}
		refusedInA++
		if got, want := ws.acked-ws.w.Requested, time.Millisecond+50*time.Millisecond; got != want {
			t.Errorf("write %d acknowledged %v after its request, want %v (refusal back, request on)", i, got, want)
		}
	}
	if refusedInA == 0 || res.Stats.Refused != refusedInA || res.Stats.RefusedBy["controller/a/0"] != refusedInA {
		t.Errorf("%d writes refused in a; stats %d %v", refusedInA, res.Stats.Refused, res.Stats.RefusedBy)
	}
}

// When every controller refuses, the client tries them all again after
// refusalBackoff until 5s have passed, then gives up: the write counts as
// unavailable, and neither as undelivered nor against convergence.
func TestWriteRefusedEverywhereIsAbandoned(t *testing.T) {
	r, res := runRefusing(t, twoControllers, 0, "controller/a/0", "controller/b/0")
	if res.Events == 0 || res.WritesUnavailable != res.Events || res.Stats.Abandoned != res.Events {
		t.Fatalf("%d events, %d unavailable, %d abandoned", res.Events, res.WritesUnavailable, res.Stats.Abandoned)
	}
	if res.Undelivered != 0 || !res.Converged || res.Connects != 0 {
		t.Fatalf("undelivered %d, converged %v, connects %d", res.Undelivered, res.Converged, res.Connects)
	}
	// Each round asks both controllers; a round starts every 1.1s or so,
	// and the last one starts before 5s have passed.
	if per := res.Stats.Refused / res.Events; per < 8 || per > 10 {
		t.Errorf("%d refusals per write, want about 2 per round for 4 to 5 rounds", per)
	}
	if r.now > r.top.Duration+unavailableAfter+time.Second {
		t.Errorf("run stopped at %v: the drain waited for writes already given up", r.now)
	}
}

// A revocation refused everywhere did not happen: its session is live
// again, and may be revoked later.
func TestAbandonedRevocationLeavesTheSessionLive(t *testing.T) {
	r, res := runRefusing(t, twoControllers, WriteRevoke, "controller/a/0", "controller/b/0")
	if res.Stats.Abandoned == 0 || res.Undelivered != 0 || !res.Converged {
		t.Fatalf("%d abandoned, undelivered %d, converged %v", res.Stats.Abandoned, res.Undelivered, res.Converged)
	}
	for i := range r.writes {
		ws := &r.writes[i]
		if ws.w.Kind != WriteRevoke {
			continue
		}
		if !ws.abandoned {
			t.Fatalf("revocation %d not abandoned", i)
		}
		if s := &r.sessions[ws.w.Session]; s.revokeAt >= 0 && s.revokeAt <= ws.w.Requested {
			t.Errorf("session %d still counts as revoked at %v by abandoned write %d", ws.w.Session, s.revokeAt, i)
		}
	}
}
