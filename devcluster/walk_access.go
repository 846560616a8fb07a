package devcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
	"github.com/certmesh/certmesh/crdt"
	"github.com/certmesh/certmesh/pki"
)

// walkAccess is the walk's access step: an admin at the first controller
// defines services echo and secret (both the dev echo upstream) and a
// policy granting alice echo; the client reaches echo by name through
// router (its address; routerName for the report), is refused at secret, and when an admin at the third controller
// removes the policy its live connection to echo is closed. The policy's
// grant and its removal each print one sync line per router,
//
//	sync <router> policy <milliseconds>
func (c *Cluster) walkAccess(ctx context.Context, w io.Writer, ctrl func(int) client.Config, sess *client.Session, router, routerName string) error {
	admin, err := c.admin(ctrl(0))
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, name := range []string{"echo", "secret"} {
		if _, err := admin.PutService(ctx, name, api.ServiceRequest{Address: c.Upstream}); err != nil {
			return fmt.Errorf("service %s at %s: %w", name, c.Controllers[0].Author().Name, err)
		}
	}
	if _, err := admin.PutPolicy(ctx, "walk", api.PolicyRequest{Identities: []string{"@alice"}, Services: []string{"@echo"}}); err != nil {
		return fmt.Errorf("policy at %s: %w", c.Controllers[0].Author().Name, err)
	}
	acked := time.Now()
	fmt.Fprintf(w, "policy walk grants alice service echo at %s (services echo and secret defined)\n", c.Controllers[0].Author().Name)
	isWalk := func(deleted bool) func(crdt.Record) bool {
		return func(r crdt.Record) bool {
			p, ok := r.(*crdt.PolicyRecord)
			return ok && p.Name == "walk" && p.Deleted == deleted
		}
	}
	if err := c.printSync(ctx, w, "policy", acked, isWalk(false)); err != nil {
		return err
	}
	service := func(name string) client.Config {
		cfg := ctrl(0).ForService(name, pki.DefaultTrustDomain)
		cfg.Routers = []string{router}
		return cfg
	}
	live, err := Connect(ctx, service("echo"), sess)
	if err != nil {
		return fmt.Errorf("connect to service echo via %s: %w", routerName, err)
	}
	defer live.Close()
	fmt.Fprintf(w, "connect to service echo by name via %s: admitted\n", routerName)
	if conn, err := Connect(ctx, service("secret"), sess); err == nil {
		conn.Close()
		return errors.New("service secret, which no policy grants, was reached")
	} else if !client.IsAccessDenied(err) {
		return fmt.Errorf("connect to service secret: want an access refusal, got %w", err)
	}
	fmt.Fprintf(w, "connect to service secret via %s: refused (access denied)\n", routerName)

	remover, err := c.admin(ctrl(2))
	if err != nil {
		return err
	}
	defer remover.Close()
	if _, err := remover.DeletePolicy(ctx, "walk"); err != nil {
		return fmt.Errorf("remove policy at %s: %w", c.Controllers[2].Author().Name, err)
	}
	removedAt := time.Now()
	fmt.Fprintf(w, "remove policy walk at %s\n", c.Controllers[2].Author().Name)
	if err := c.printSync(ctx, w, "policy", removedAt, isWalk(true)); err != nil {
		return err
	}
	closedAfter, closed := live.WaitClosed(syncTimeout)
	if !closed {
		fmt.Fprintf(w, "connection to echo closed: no, still up %v after the policy removal\n", syncTimeout)
		return errors.New("the connection the removed policy granted was not closed")
	}
	fmt.Fprintf(w, "connection to echo closed: yes, %.1f ms after the policy removal was acknowledged\n", ms(closedAfter.Sub(removedAt)))
	return nil
}
