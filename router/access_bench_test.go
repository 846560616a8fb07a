package router

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/internal/testutil"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/router/routertest"
)

// BenchmarkAdmissionWithPolicies measures the whole admission question of
// a new connection, Decide then Access, with 1M sessions (and their
// certificates) in the store, 10,000 services, 10,000 policies and 1,000
// roles. Target: under 1 µs per decision (decision_hot, ns/op).
// policy_change is
// the cost of applying one policy change to the index (a put or a delete
// of a policy whose service selector matches about 100 services), which
// does not grow with the number of policies.
//
//	go test ./router -run '^$' -bench AdmissionWithPolicies -benchtime 2000000x
func BenchmarkAdmissionWithPolicies(b *testing.B) {
	const (
		sessions     = 1_000_000
		identities   = 50_000
		services     = 10_000
		policies     = 10_000
		roles        = 1_000
		serviceRoles = 100
	)
	store := crdt.NewStore()
	store.Reserve(sessions, sessions)
	author := crdt.Author{Name: "ctrl-a", Incarnation: 1}
	now := crdt.MillisOf(time.Now())
	seq := uint64(0)
	merge := func(r crdt.Record) {
		seq++
		*r.Head() = crdt.Header{Author: author, Seq: seq, HLC: crdt.NewTimestamp(now-1000, 0)}
		if _, err := store.MergeVerified(r); err != nil {
			b.Fatal(err)
		}
	}
	role := func(i int) string { return fmt.Sprintf("role-%d", i%roles) }
	ident := func(i int) string { return fmt.Sprintf("user-%d", i%identities) }
	for i := range services {
		merge(&crdt.ServiceRecord{Name: fmt.Sprintf("svc-%d", i), Address: "127.0.0.1:9",
			Roles: crdt.NormalizeList([]string{fmt.Sprintf("tier-%d", i%serviceRoles)})})
	}
	for i := range policies {
		merge(&crdt.PolicyRecord{Name: fmt.Sprintf("p-%d", i),
			Identities: crdt.NormalizeList([]string{"#" + role(i), "@" + ident(i*7)}),
			Services:   crdt.NormalizeList([]string{fmt.Sprintf("@svc-%d", (i*13)%services), fmt.Sprintf("#tier-%d", i%serviceRoles)})})
	}
	for i := range identities {
		merge(&crdt.IdentityRolesRecord{Identity: ident(i), Roles: crdt.NormalizeList([]string{role(i), role(i * 31)})})
	}
	facts := make([]crdt.CertFacts, sessions)
	for i := range sessions {
		var id crdt.SessionID
		var serial crdt.Serial
		binary.BigEndian.PutUint64(id[8:], uint64(i)+1)
		binary.BigEndian.PutUint64(serial[8:], uint64(i)+1)
		sess := &crdt.SessionRecord{ID: id, Identity: ident(i), Method: "oidc", Created: now - 1000, Expires: now + 3_600_000}
		if i%4 == 0 {
			sess.Roles = []string{role(i * 17)} // claimed at login
		}
		merge(sess)
		merge(&crdt.CertRecord{Serial: serial, Session: id, Identity: ident(i), NotBefore: now - 60_000, NotAfter: now + 3_600_000})
		facts[i] = crdt.CertFacts{Serial: serial, Session: id, Identity: ident(i), Issuer: "ctrl-a", NotBefore: now - 60_000, NotAfter: now + 3_600_000}
	}
	names := make([]string, services)
	for i := range names {
		names[i] = fmt.Sprintf("svc-%d", i)
	}
	runtime.GC()

	// "hot": a working set of 4,096 clients reconnecting to services;
	// "cold": a stride over every session and service, each lookup a
	// cache miss. decide_only_* is Decide alone on the same clients, in
	// the same run: the difference is the cost of the access question.
	pick := map[string]func(i int) (crdt.CertFacts, string){
		"hot": func(i int) (crdt.CertFacts, string) {
			j := (i * 7919) % 4096
			return facts[j*241], names[(j*104729)%services]
		},
		"cold": func(i int) (crdt.CertFacts, string) {
			return facts[(i*7919)%sessions], names[(i*104729)%services]
		},
	}
	for _, set := range []string{"hot", "cold"} {
		for _, access := range []bool{true, false} {
			name := "decision_" + set
			if !access {
				name = "decide_only_" + set
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				granted := 0
				// The machine may be shared: the CPU time of this thread,
				// next to ns/op, is what a decision costs when it runs.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				for i := 0; b.Loop(); i++ {
					f, svc := pick[set](i)
					if d := Decide(store, f, now, ModeStrict); !d.Admitted() {
						b.Fatalf("verdict %v", d.Verdict)
					}
					if access && Access(store, f, svc) == crdt.AccessGranted {
						granted++
					}
				}
				b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu_ns/op")
				if access {
					b.ReportMetric(float64(granted)/float64(b.N), "granted_share")
				}
			})
		}
	}
	// One cache and TLB miss on this machine now: on a shared machine it
	// is many times its idle figure, and so is every decision.
	b.Run("memory_latency", benchMemoryLatency)
	b.Run("policy_change", func(b *testing.B) {
		put := &crdt.PolicyRecord{Name: "p-0", Identities: []string{"#role-0", "@user-0"}, Services: []string{"#tier-0", "@svc-0"}}
		for i := 0; b.Loop(); i++ {
			r := *put
			if i%2 == 0 {
				r = crdt.PolicyRecord{Name: "p-0", Deleted: true}
			}
			seq++
			r.Header = crdt.Header{Author: author, Seq: seq, HLC: crdt.NewTimestamp(now+crdt.Millis(i), 0)}
			if _, err := store.MergeVerified(&r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAccessRemovalClose holds liveConns connections of one role to
// one service, and bystanders connections of another role to the same
// service, and measures the time from applying a policy removal (the store
// updated and subscribers told) until the router has closed the
// connections it no longer grants, each client's socket having received
// its FIN (access_close_ms; target under 50 ms, as for an identity
// revocation); the bystanders stay up. The router judges every live
// connection to a replicated service again, a few map lookups each, so
// the cost grows with the live connections, not with the policies.
//
//	go test ./router -run '^$' -bench AccessRemovalClose -benchtime 1x
func BenchmarkAccessRemovalClose(b *testing.B) {
	const liveConns, bystanders = 4000, 100
	needFiles(b, 4*(liveConns+bystanders)+500)
	e := newTestEnv(b, func(c *Config) { c.DrainTimeout = 0 })
	var shutAt atomic.Int64
	shutDone := make(chan struct{}, 1)
	e.router.testAfterShut = func(int) {
		shutAt.Store(time.Now().UnixNano())
		select {
		case shutDone <- struct{}{}:
		default:
		}
	}
	var closeShut, closeTotal time.Duration
	for round := 0; round < b.N; round++ {
		team, other := fmt.Sprintf("team-%d", round), fmt.Sprintf("other-%d", round)
		policy := fmt.Sprintf("p-%d", round)
		e.publish(e.ctrlA.Write(
			&crdt.ServiceRecord{Name: "echo", Address: e.echo.Addr()},
			&crdt.PolicyRecord{Name: policy, Identities: []string{"#" + team}, Services: []string{"@echo"}},
			&crdt.PolicyRecord{Name: "keep", Identities: []string{"#" + other}, Services: []string{"@echo"}},
		))
		certs := make([]*routertest.ClientCert, liveConns+bystanders)
		var recs []crdt.Record
		for i := range certs {
			id, role := fmt.Sprintf("%s-%d", team, i), team
			if i >= liveConns {
				role = other
			}
			var r []crdt.Record
			certs[i], r = e.ctrlA.Login(id, time.Hour)
			recs = append(recs, r...)
			recs = append(recs, e.ctrlA.Write(&crdt.IdentityRolesRecord{Identity: id, Roles: []string{role}})...)
		}
		e.publish(recs)
		closedAt := make([]atomic.Int64, len(certs))
		var closed sync.WaitGroup
		ready := make(chan struct{}, len(certs))
		conns := make([]*tls.Conn, len(certs))
		for i, cc := range certs {
			c, err := tls.Dial("tcp", e.router.Addr().String(), &tls.Config{RootCAs: e.pki.RootPool(),
				ServerName: pki.ServiceHost("echo", testTD), MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cc.TLS(true)}})
			if err != nil {
				b.Fatalf("connection %d: %v", i, err)
			}
			conns[i] = c
			if i < liveConns {
				closed.Add(1)
			}
			go func() {
				if i < liveConns {
					defer closed.Done()
				}
				buf := make([]byte, 1)
				c.Write([]byte{'x'})
				if _, err := io.ReadFull(c, buf); err == nil {
					ready <- struct{}{}
				}
				io.Copy(io.Discard, c)
				closedAt[i].Store(time.Now().UnixNano())
			}()
		}
		for range certs {
			<-ready
		}
		removal := e.ctrlB.Write(&crdt.PolicyRecord{Name: policy, Deleted: true})
		runtime.GC()

		start := time.Now()
		must(b, e.mesh.PublishVerified(removal...))
		closed.Wait()
		select {
		case <-shutDone:
		case <-time.After(10 * time.Second):
			b.Fatal("the router closed nothing")
		}
		closeShut += time.Unix(0, shutAt.Load()).Sub(start)
		var last int64
		for i := range liveConns {
			last = max(last, closedAt[i].Load())
		}
		closeTotal += time.Unix(0, last).Sub(start)
		// The handlers unregister the closed connections on their own.
		testutil.Eventually(b, 30*time.Second, "only the bystanders to stay", func() bool { return e.router.Active() == bystanders })
		for i := liveConns; i < len(conns); i++ {
			if closedAt[i].Load() != 0 {
				b.Fatalf("bystander %d was closed", i)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		testutil.Eventually(b, 30*time.Second, "the router to forget them", func() bool { return e.router.Active() == 0 })
	}
	b.ReportMetric(float64(closeShut.Microseconds())/1000/float64(b.N), "access_close_ms")
	b.ReportMetric(float64(closeTotal.Microseconds())/1000/float64(b.N), "access_client_seen_ms")
	b.ReportMetric(0, "ns/op")
}

// threadCPU is the CPU time the calling OS thread has used, in ns.
func threadCPU() int64 {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
