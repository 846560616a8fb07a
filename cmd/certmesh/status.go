package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/pki"
)

// statusCommand is `certmesh status` (its --help).
func statusCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "print a node's members (with their lag), regions, version vector and record counts",
		UsageText: "certmesh status --url URL [--ca FILE --admin-cert F --admin-key F] [--json]",
		Description: "URL is a node's metrics listener (http://host:port, no credentials) or a controller's " +
			"API (https://host:port, with --ca and the admin certificate). /v1/status is appended when " +
			"the URL has no path.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "node `URL` (required)"},
			&cli.StringFlag{Name: "ca", Usage: "root CA `FILE` (PEM), for an https URL"},
			&cli.StringFlag{Name: "admin-cert", Usage: "admin certificate `FILE` (PEM), for a controller's API"},
			&cli.StringFlag{Name: "admin-key", Usage: "admin key `FILE` (PEM)"},
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			u, err := url.Parse(c.String("url"))
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return usagef("--url: %q is not http(s)://host:port", c.String("url"))
			}
			tc := pki.HardenTLS(&tls.Config{})
			if c.String("ca") != "" {
				pool, err := loadCAPool(c.String("ca"))
				if err != nil {
					return usagef("--ca: %v", err)
				}
				tc.RootCAs = pool
			} else if u.Scheme == "https" {
				return usagef("--ca: required for an https URL")
			}
			if c.String("admin-cert") != "" || c.String("admin-key") != "" {
				if u.Scheme != "https" {
					// Over plain http the certificate would not even be
					// asked for: refuse rather than query unauthenticated
					// what the operator meant to query as an admin.
					return usagef("--url: %q is not https; the admin certificate is only sent to a controller's API (https://host:port), not to a plain-http metrics listener", c.String("url"))
				}
				cert, err := loadAdminCert(c)
				if err != nil {
					return err
				}
				tc.Certificates = []tls.Certificate{cert}
			}
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
			defer hc.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
			defer cancel()
			st, err := client.FetchStatus(ctx, hc, u.String())
			if err != nil {
				return statusError(err, len(tc.Certificates) > 0)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(stdout, st)
			return nil
		},
	}
}

// printStatus writes the status as tables.
func printStatus(w io.Writer, st *client.Status) {
	fmt.Fprintf(w, "node %s  role %s  region %s  digest %s\n\n", st.Node, st.Role, st.Region, st.Digest)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tROLE\tREGION\tSTATE\tLAG")
	regions := map[string]int{}
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", m.Name, m.Role, m.Region, m.State, m.Lag)
		if m.State == "alive" || m.State == "" {
			regions[m.Region]++
		}
	}
	tw.Flush()

	names := make([]string, 0, len(regions))
	for r := range regions {
		names = append(names, r)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, r := range names {
		parts = append(parts, fmt.Sprintf("%s (%d alive)", r, regions[r]))
	}
	fmt.Fprintf(w, "\nregions: %s\n\n", strings.Join(parts, ", "))

	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AUTHOR\tSEQ")
	authors := make([]string, 0, len(st.VersionVector))
	for a := range st.VersionVector {
		authors = append(authors, a)
	}
	sort.Strings(authors)
	for _, a := range authors {
		fmt.Fprintf(tw, "%s\t%d\n", a, st.VersionVector[a])
	}
	tw.Flush()

	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "RECORDS\tCOUNT")
	kinds := make([]string, 0, len(st.Records))
	for k := range st.Records {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(tw, "%s\t%d\n", k, st.Records[k])
	}
	tw.Flush()
	printIssuers(w, st.Issuers)
}

// printIssuers writes a controller's token issuers and their health.
func printIssuers(w io.Writer, issuers []api.IssuerStatus) {
	if len(issuers) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tKIND\tSTATE\tKEYS\tLAST KEY REFRESH\tLAST ERROR")
	for _, is := range issuers {
		refreshed, lastErr := is.LastKeyRefresh, is.LastError
		if refreshed == "" {
			refreshed = "-"
		}
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", is.Issuer, is.Kind, is.State, is.Keys, refreshed, lastErr)
	}
	tw.Flush()
}

// statusError explains a controller's refusal to show its status: its
// API's /v1/status is for admins, and a 401 there (no client certificate)
// reads "401 forbidden" in the SDK's words, which says neither what is
// missing nor where the status is to be had without it.
func statusError(err error, sentCert bool) error {
	var ae *client.APIError
	if !errors.As(err, &ae) || (ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden) {
		return err
	}
	hint := "give --admin-cert and --admin-key (DIR/admin/cert.pem and DIR/admin/key.pem of certmesh pki init), " +
		"or ask the node's metrics listener (--url http://<metrics.listen>), which needs no certificate"
	if sentCert {
		hint = "the certificate of --admin-cert is not the deployment's admin certificate (DIR/admin/cert.pem of certmesh pki init)"
	}
	return usagef("%s %s: %d %s: %s; %s", ae.Method, ae.URL, ae.Status, http.StatusText(ae.Status), ae.Message, hint)
}
