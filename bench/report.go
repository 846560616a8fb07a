package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is a run's figures; `certmesh bench --json` prints it.
type Report struct {
	Controllers []string `json:"controllers"`
	Routers     []string `json:"routers"`
	Clients     int      `json:"clients"`
	// Rate is the target rate of lives per second; 0: as fast as it goes.
	Rate      float64 `json:"rate"`
	ElapsedS  float64 `json:"elapsed_s"`
	Logins    int64   `json:"logins"`
	LoginRate float64 `json:"logins_per_s"`
	// Revocation is how sessions were revoked: "admin" or "logout"; empty
	// when they were not.
	Revocation string `json:"revocation,omitempty"`

	// LatencyMS holds one summary per measure (Measures lists them).
	LatencyMS map[string]Summary `json:"latency_ms"`
	// FirstAdmissionByRouterMS is first_admission split by router.
	FirstAdmissionByRouterMS map[string]Summary `json:"first_admission_by_router_ms"`
	// Errors counts the failures of each step (login, connect, rotate,
	// revoke, revoke_to_close), with the first one's message.
	Errors map[string]*ErrorCount `json:"errors"`
}

// ErrorCount is how often a step failed, and how it failed first.
type ErrorCount struct {
	Count int64  `json:"count"`
	First string `json:"first"`
}

// Measures are the keys of Report.LatencyMS, in the order the table gives
// them, with what each one is.
var Measures = []struct{ Key, Help string }{
	{"login", "POST /v1/sessions, from the request to the answer"},
	{"first_admission", "from the login's answer to the first admission at a router (sync delay, pulls on miss included)"},
	{"handshake", "TCP connect and TLS handshake at a router, every connection"},
	{"rotate", "POST /v1/sessions/current/certificates, from the request to the answer"},
	{"rotated_admission", "from the rotation's answer to the new certificate's first admission at a router"},
	{"revoke", "the revocation call, from the request to the answer"},
	{"revoke_to_close", "from the revocation's answer to the router closing the session's live connection"},
}

func (r *runner) report(elapsed time.Duration) *Report {
	st := r.stats
	rep := &Report{
		Controllers: r.cfg.Controllers, Routers: r.cfg.Routers, Clients: r.cfg.Clients, Rate: r.cfg.Rate,
		ElapsedS: elapsed.Seconds(), Logins: st.completed.Load(),
		LatencyMS: map[string]Summary{
			"login": st.login.summary(), "first_admission": st.firstAdmission.summary(),
			"handshake": st.handshake.summary(), "rotate": st.rotate.summary(),
			"rotated_admission": st.rotatedAdmission.summary(), "revoke": st.revoke.summary(),
			"revoke_to_close": st.revokeToClose.summary(),
		},
		FirstAdmissionByRouterMS: make(map[string]Summary, len(st.byRouter)),
		Errors:                   make(map[string]*ErrorCount),
	}
	if elapsed > 0 {
		rep.LoginRate = float64(rep.Logins) / elapsed.Seconds()
	}
	if r.cfg.Revoke {
		rep.Revocation = "logout"
		if r.cfg.Admin != nil {
			rep.Revocation = "admin"
		}
	}
	for rt, h := range st.byRouter {
		rep.FirstAdmissionByRouterMS[rt] = h.summary()
	}
	st.mu.Lock()
	for k, e := range st.errors {
		c := *e
		rep.Errors[k] = &c
	}
	st.mu.Unlock()
	return rep
}

// WriteTable writes the report as a table for people.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%d logins in %.1fs (%.1f/s) by %d clients", rep.Logins, rep.ElapsedS, rep.LoginRate, rep.Clients)
	if rep.Rate > 0 {
		fmt.Fprintf(w, " at a target of %g/s", rep.Rate)
	}
	fmt.Fprintf(w, "; %d controllers, %d routers", len(rep.Controllers), len(rep.Routers))
	if rep.Revocation != "" {
		fmt.Fprintf(w, "; revoked by %s", rep.Revocation)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ms\tcount\tp50\tp90\tp99\tmax\t")
	row := func(name string, s Summary) {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, s.Count, s.P50, s.P90, s.P99, s.Max)
	}
	for _, m := range Measures {
		// A step turned off, or one that never succeeded (its errors
		// follow), has no row.
		if s := rep.LatencyMS[m.Key]; s.Count > 0 {
			row(m.Key, s)
		}
	}
	for _, rt := range rep.Routers {
		row("first_admission "+rt, rep.FirstAdmissionByRouterMS[rt])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(rep.Errors)) {
		e := rep.Errors[k]
		fmt.Fprintf(w, "errors %s: %d, first: %s\n", k, e.Count, e.First)
	}
	return nil
}

// Progress is the figures so far, for a progress line.
type Progress struct {
	Elapsed, Duration time.Duration
	Logins, Errors    int64
	Login, Admission  Summary
}

// String is the progress line.
func (p Progress) String() string {
	return fmt.Sprintf("%4.0fs/%.0fs  logins %d (%.1f/s)  errors %d  login p99 %.1fms  first admission p50 %.1fms p99 %.1fms",
		p.Elapsed.Seconds(), p.Duration.Seconds(), p.Logins, float64(p.Logins)/max(p.Elapsed.Seconds(), 1e-3),
		p.Errors, p.Login.P99, p.Admission.P50, p.Admission.P99)
}

// progress calls cfg.Progress every ProgressEvery until the returned stop.
func (r *runner) progress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				r.cfg.Progress(Progress{
					Elapsed: time.Since(r.start), Duration: r.cfg.Duration,
					Logins: r.stats.completed.Load(), Errors: r.stats.errorCount(),
					Login: r.stats.login.summary(), Admission: r.stats.firstAdmission.summary(),
				})
			}
		}
	}()
	return func() { close(done); <-finished }
}
