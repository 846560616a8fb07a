package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/scenarios (datadriven, as in
// etcd-io/raft): steps and the exact outcome they must produce. Rewrite the
// expectations with `go test ./sim -run Scenarios -rewrite` and read the
// diff.
//
//	topology                      YAML input; prints nodes and base delays, or the error
//	start [strategy=S] [seed=N]   a run of the topology (default strategy: script)
//	send at=D from=N to=N [size=B] [reliable]   script strategy: a message
//	write at=D controller=N [kind=issue|rotate|revoke] [session=S]
//	connect at=D router=N cert=C  ask router N whether it admits cert C
//	run until=D                   advance virtual time; prints the trace
//	up from=N to=N at=D           the membership view of from at D
//	state                         per node: writes applied, digest
//	report [strategy=S] [seed=N]  a whole run: the report's result, without wall_seconds
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, s.do)
	})
}

type scenario struct {
	top   *Topology
	r     *run
	lines []string
}

func (s *scenario) do(t *testing.T, td *datadriven.TestData) string {
	str := func(key, def string) string {
		if a, ok := td.Arg(key); ok && len(a.Vals) > 0 {
			return a.Vals[0]
		}
		return def
	}
	dur := func(key string) time.Duration {
		d, err := time.ParseDuration(str(key, "0s"))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return d
	}
	node := func(key string) NodeID {
		id, ok := s.r.cl.NodeByName(str(key, ""))
		if !ok {
			t.Fatalf("%s: no node %q", key, str(key, ""))
		}
		return id
	}
	num := func(key string, def int) int {
		n, err := strconv.Atoi(str(key, strconv.Itoa(def)))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return n
	}
	needRun := func() {
		if s.r == nil {
			t.Fatalf("%s: no run; use start first", td.Cmd)
		}
	}

	switch td.Cmd {
	case "topology":
		top, err := ParseTopology("scenario.yaml", []byte(td.Input))
		if err != nil {
			return err.Error()
		}
		s.top, s.r = top, nil
		cl := newCluster(top, 250)
		var b strings.Builder
		fmt.Fprintf(&b, "%d nodes:", len(cl.Nodes))
		for _, n := range cl.Nodes {
			fmt.Fprintf(&b, " %s", n.Name)
		}
		b.WriteString("\none-way:")
		for a := range top.Regions {
			for c := a; c < len(top.Regions); c++ {
				fmt.Fprintf(&b, " %s-%s %v", top.Regions[a].Name, top.Regions[c].Name, top.RegionDelay(a, c))
			}
		}
		return b.String()

	case "start":
		name := str("strategy", "script")
		f := func(*Cluster) (Strategy, error) { return &scriptStrategy{}, nil }
		if name != "script" {
			var ok bool
			if f, ok = lookupStrategy(name); !ok {
				t.Fatalf("no strategy %q", name)
			}
		}
		cfg := DefaultConfig().withSeed(int64(num("seed", 1)))
		r, err := newRun(s.top, name, f, cfg)
		if err != nil {
			return err.Error()
		}
		r.noStop = true
		s.lines = nil
		r.trace = func(format string, args ...any) {
			s.lines = append(s.lines, fmt.Sprintf("%v %s", r.now, fmt.Sprintf(format, args...)))
		}
		r.start()
		s.r = r
		return ""

	case "send":
		needRun()
		from, to := node("from"), node("to")
		m := Message{Size: int32(num("size", 100)), Kind: 1, State: true, Reliable: td.HasArg("reliable")}
		s.r.at(from, dur("at"), func(e *Env) { e.Send(to, m) })
		return ""

	case "write":
		needRun()
		ctrl := node("controller")
		kind := map[string]WriteKind{"issue": WriteIssue, "rotate": WriteRotate, "revoke": WriteRevoke}[str("kind", "issue")]
		session := num("session", -1)
		s.r.sched.push(event{at: dur("at"), kind: evCall, data: func() {
			if id := s.r.inject(ctrl, kind, SessionID(session)); id < 0 {
				s.lines = append(s.lines, fmt.Sprintf("%v write refused: %s is down", s.r.now, s.r.cl.Nodes[ctrl].Name))
			}
		}})
		return ""

	case "connect":
		needRun()
		router, cert := node("router"), CertID(num("cert", 0))
		s.r.sched.push(event{at: dur("at"), kind: evCall, data: func() {
			s.r.connects = append(s.r.connects, connectState{router: router, cert: cert, revoke: -1, query: s.r.now})
			s.r.pending++
			s.r.connect(len(s.r.connects) - 1)
		}})
		return ""

	case "run":
		needRun()
		s.r.runUntil(dur("until"))
		out := strings.Join(s.lines, "\n")
		s.lines = nil
		if out == "" {
			return "(nothing)"
		}
		return out

	case "up":
		needRun()
		if s.r.net.seenUp(node("from"), node("to"), dur("at")) {
			return "up"
		}
		return "down"

	case "state":
		needRun()
		var b strings.Builder
		for i, info := range s.r.cl.Nodes {
			var ids []string
			for w := range s.r.writes {
				if s.r.writes[w].applied[i/64]&(1<<(uint(i)%64)) != 0 {
					ids = append(ids, strconv.Itoa(w))
				}
			}
			status := ""
			if !s.r.alive[i] {
				status = " (down)"
			}
			fmt.Fprintf(&b, "%s%s: applied [%s] digest %016x\n", info.Name, status, strings.Join(ids, " "), s.r.nodes[i].Digest())
		}
		for i := range s.r.writes {
			ws := &s.r.writes[i]
			acked := "not acked"
			if ws.acked >= 0 {
				acked = fmt.Sprintf("acked at %v", ws.acked)
			}
			fmt.Fprintf(&b, "write %d %v at %s requested %v, %s\n", i, ws.w.Kind, s.r.cl.Nodes[ws.w.Controller].Name, ws.w.Requested, acked)
		}
		return strings.TrimSuffix(b.String(), "\n")

	case "report":
		res, err := Run(s.top, str("strategy", "test-direct"), DefaultConfig().withSeed(int64(num("seed", 1))))
		if err != nil {
			return err.Error()
		}
		res.WallSeconds = 0
		b, err := json.MarshalIndent(res, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		return string(bytes.ReplaceAll(b, []byte(`,
 "wall_seconds": 0`), nil))
	}
	t.Fatalf("unknown command %q", td.Cmd)
	return ""
}

// inject makes a client write at controller ctrl now, as the workload does,
// bypassing the choice of controller: an issue creates a session; rotate
// and revoke act on session (the latest one if negative). It returns the
// write's id, or -1 if the controller is down.
func (r *run) inject(ctrl NodeID, kind WriteKind, session SessionID) EventID {
	if !r.alive[ctrl] {
		return -1
	}
	if kind != WriteIssue && session < 0 {
		session = SessionID(len(r.sessions) - 1)
	}
	id := EventID(len(r.writes))
	w := &Write{ID: id, Kind: kind, Session: session, Controller: ctrl, Requested: r.now}
	switch kind {
	case WriteIssue:
		w.Session = SessionID(len(r.sessions))
		r.sessions = append(r.sessions, sessionState{region: r.cl.Nodes[ctrl].Region, cert: -1, livePos: -1, revokeAt: -1})
		fallthrough
	case WriteRotate:
		w.Cert = CertID(len(r.certs))
		r.certs = append(r.certs, certState{session: w.Session, write: id, issuer: ctrl})
	case WriteRevoke:
		w.Cert = r.sessions[session].cert
		r.sessions[session].revokeAt = r.now
		r.removeLive(session)
	}
	w.Identity = int32(w.Session)
	r.writes = append(r.writes, writeState{w: w, acked: -1, lastApply: -1, applied: make([]uint64, r.words)})
	r.tracef("write %d: %v session=%d cert=%d at %s", id, kind, w.Session, w.Cert, r.cl.Nodes[ctrl].Name)
	r.ctrls[ctrl].Write(r.now, w)
	return id
}
