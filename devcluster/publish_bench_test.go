package devcluster

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
	"github.com/certmesh/certmesh/trust"
	"github.com/certmesh/certmesh/trust/trusttest"
)

// BenchmarkHandshakeDuringPublish is the data plane end to end, over real
// memberlist and real sockets: a client's TLS handshake through a router,
// and one request through it to the upstream, made one after the other,
// first while the cluster is idle and then while a controller publishes
// 40,000 records (20,000 logins, each a session and a certificate record,
// in group commits of 64, each signed once with the controller's real key,
// crdt.SignBatch) that the
// router ingests. Target: publish-p99-ms within 2x idle-p99-ms
// (p99-ratio <= 2).
//
//	go test -run '^$' -bench HandshakeDuringPublish -benchtime 1x ./devcluster/
func BenchmarkHandshakeDuringPublish(b *testing.B) {
	const (
		records   = 40_000
		perCommit = 64
		idleConns = 300
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: b.TempDir(), Regions: []string{"us-east"}, RoutersPerRegion: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctrl, rt := c.Controllers[0], c.Routers[0]

	roots, err := pki.LoadCerts(filepath.Join(c.PKIDir, pki.CACertFile))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	cfg := client.DefaultConfig()
	cfg.RootCAs = pool
	cfg.Controllers = []string{"https://" + ctrl.APIAddr()}
	token, err := c.OIDC.Mint("alice", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	sess, err := client.Login(ctx, cfg, token)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Routers = []string{rt.Addr().String()}
	// A handshake and request that fail (the request times out after 5s
	// in LiveConn.RoundTrip) count with the time they took, and in failed.
	failed := 0
	handshake := func() time.Duration {
		start := time.Now()
		lc, err := Connect(ctx, cfg, sess)
		d := time.Since(start)
		if err != nil {
			b.Logf("handshake and request failed after %v: %v", d, err)
			failed++
			return d
		}
		lc.Close()
		return d
	}

	// The publisher writes as the controller, under an incarnation of its
	// own (its dots cannot collide with the controller's writer's), with
	// the controller's key: the router verifies every record against the
	// signer record the controller published.
	name := ctrl.Author().Name
	key, err := pki.LoadKey(filepath.Join(c.PKIDir, name, pki.KeyFile))
	if err != nil {
		b.Fatal(err)
	}
	w := trusttest.NewAuthor(b, name, key, ctrl.Mesh.Now)
	var applied atomic.Int64
	var incarnation atomic.Uint64 // the publisher's, this run
	cancelSub := rt.Mesh.Subscribe(func(recs []crdt.Record) {
		for _, r := range recs {
			if a := r.Head().Author; a.Name == name && a.Incarnation == incarnation.Load() {
				applied.Add(1)
			}
		}
	})
	defer cancelSub()

	for b.Loop() {
		w.Author.Incarnation++ // a publisher of its own per run
		w.Seq = 0
		incarnation.Store(w.Author.Incarnation)
		applied.Store(0)
		var commits [][]crdt.Record
		var batch []crdt.Record
		for range records / 2 {
			s, cr := w.Session(time.Now())
			if batch = append(batch, s, cr); len(batch) >= perCommit {
				commits, batch = append(commits, batch), nil
			}
		}
		if len(batch) > 0 {
			commits = append(commits, batch)
		}
		for _, recs := range commits { // one signature per commit, as the controller's writer signs
			if err := crdt.SignBatch(recs, trust.RecordSigner{Key: key}); err != nil {
				b.Fatal(err)
			}
		}
		handshake() // warm: the router knows the certificate from here on
		var idle, busy []time.Duration
		for range idleConns {
			idle = append(idle, handshake())
		}
		published := make(chan error, 1)
		start := time.Now()
		go func() {
			for _, recs := range commits {
				if err := ctrl.Mesh.Publish(recs); err != nil {
					published <- err
					return
				}
			}
			published <- nil
		}()
		for applied.Load() < records {
			busy = append(busy, handshake())
			if time.Since(start) > 4*time.Minute {
				b.Fatalf("the router applied %d records of %d in 4 minutes", applied.Load(), records)
			}
		}
		ingest := time.Since(start)
		if err := <-published; err != nil {
			b.Fatal(err)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		q := func(lat []time.Duration, f float64) float64 {
			slices.Sort(lat)
			return ms(lat[int(f*float64(len(lat)-1))])
		}
		b.ReportMetric(q(idle, 0.5), "idle-p50-ms")
		b.ReportMetric(q(idle, 0.99), "idle-p99-ms")
		b.ReportMetric(q(busy, 0.5), "publish-p50-ms")
		b.ReportMetric(q(busy, 0.99), "publish-p99-ms")
		b.ReportMetric(ms(busy[len(busy)-1]), "publish-max-ms")
		b.ReportMetric(q(busy, 0.99)/q(idle, 0.99), "p99-ratio")
		b.ReportMetric(float64(len(busy)), "handshakes")
		b.ReportMetric(float64(failed), "failed")
		b.ReportMetric(ms(ingest), "ingest-ms")
	}
}
