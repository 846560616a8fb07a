package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/api"
	"github.com/certmesh/certmesh/client"
)

// The access commands: `certmesh service`, `certmesh policy`, `certmesh
// identity roles` and `certmesh access`, admin calls with the same flags as
// revoke.

func adminFlags(extra ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		controllerFlag(),
		caFlag(),
		&cli.StringFlag{Name: "admin-cert", Usage: "admin certificate `FILE` (PEM) (required)"},
		&cli.StringFlag{Name: "admin-key", Usage: "admin key `FILE` (PEM) (required)"},
	}, extra...)
}

// withAdmin runs fn with an admin client built from the flags.
func withAdmin(c *cli.Context, fn func(ctx context.Context, a *client.Admin) error) error {
	cfg, err := clientConfigFrom(c)
	if err != nil {
		return err
	}
	cert, err := loadAdminCert(c)
	if err != nil {
		return err
	}
	admin, err := client.NewAdmin(cfg, cert)
	if err != nil {
		return usagef("%v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(c.Context, clientCallTimeout)
	defer cancel()
	return fn(ctx, admin)
}

// nameArg returns the command's one positional argument and a context
// holding its flags, before the argument or after it: urfave/cli stops
// parsing flags at the first argument, and these commands are written
// `certmesh service put NAME --address ...`.
func nameArg(c *cli.Context, what string) (string, *cli.Context, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return "", nil, usagef("want the %s", what)
	}
	if len(args) == 1 {
		return args[0], c, nil
	}
	set := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range c.Command.Flags {
		if err := f.Apply(set); err != nil {
			return "", nil, err
		}
	}
	for _, n := range c.LocalFlagNames() {
		for _, v := range flagValues(c, n) {
			if err := set.Set(n, v); err != nil {
				return "", nil, usagef("--%s: %v", n, err)
			}
		}
	}
	if err := set.Parse(args[1:]); err != nil {
		return "", nil, usagef("%v", err)
	}
	if set.NArg() > 0 {
		return "", nil, usagef("unexpected argument %q after the %s", set.Arg(0), what)
	}
	return args[0], cli.NewContext(c.App, set, c), nil
}

// flagValues are the values given to flag n of c, one per occurrence.
func flagValues(c *cli.Context, n string) []string {
	if l := c.StringSlice(n); l != nil {
		return l
	}
	return []string{c.String(n)}
}

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func list(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

func serviceCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "service",
		Usage: "define, remove and list the services routers proxy to (admin)",
		Description: "A service is a name (a DNS label), the host:port a router dials (plain TCP) and roles. Clients\n" +
			"choose it by TLS SNI <service>.svc.<trust-domain>; a policy must grant it (certmesh policy).",
		Subcommands: []*cli.Command{
			{
				Name:      "put",
				Usage:     "define or replace a service",
				UsageText: "certmesh service put NAME --address HOST:PORT [--role R]... --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags: adminFlags(
					&cli.StringFlag{Name: "address", Usage: "`HOST:PORT` the routers dial (required)"},
					&cli.StringSliceFlag{Name: "role", Usage: "a `ROLE` of the service (repeat, or a comma list)"},
				),
				Action: func(c *cli.Context) error {
					name, c, err := nameArg(c, "service NAME")
					if err != nil {
						return err
					}
					if c.String("address") == "" {
						return usagef("--address: required")
					}
					var roles []string
					for _, r := range c.StringSlice("role") {
						roles = append(roles, splitList(r)...)
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						s, err := a.PutService(ctx, name, api.ServiceRequest{Address: c.String("address"), Roles: roles})
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "service %s %s roles %s at %s\n", s.Name, s.Address, list(s.Roles), s.HLC)
						return nil
					})
				},
			},
			{
				Name:      "rm",
				Usage:     "remove a service: live connections to it are closed",
				UsageText: "certmesh service rm NAME --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags:     adminFlags(),
				Action: func(c *cli.Context) error {
					name, c, err := nameArg(c, "service NAME")
					if err != nil {
						return err
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						s, err := a.DeleteService(ctx, name)
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "removed service %s at %s\n", s.Name, s.HLC)
						return nil
					})
				},
			},
			{
				Name:      "ls",
				Usage:     "list the services",
				UsageText: "certmesh service ls --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags:     adminFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						l, err := a.Services(ctx)
						if err != nil {
							return err
						}
						var rows [][]string
						for _, s := range l.Services {
							rows = append(rows, []string{s.Name, s.Address, list(s.Roles), s.HLC})
						}
						table(stdout, "NAME\tADDRESS\tROLES\tHLC", rows)
						return nil
					})
				},
			},
		},
	}
}

func policyCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "grant identities the right to reach services (admin)",
		Description: "A policy has two lists of selectors: #role (every identity or service with that role), @name (one\n" +
			"identity or service) or #all. Nothing is reachable without a policy. A change reaches every router as\n" +
			"a revocation does, and closes the live connections it no longer grants.",
		Subcommands: []*cli.Command{
			{
				Name:      "put",
				Usage:     "define or replace a policy",
				UsageText: "certmesh policy put NAME --identities SEL,... --services SEL,... --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags: adminFlags(
					&cli.StringFlag{Name: "identities", Usage: "`SEL,...` of the identities granted (required)"},
					&cli.StringFlag{Name: "services", Usage: "`SEL,...` of the services they may reach (required)"},
				),
				Action: func(c *cli.Context) error {
					name, c, err := nameArg(c, "policy NAME")
					if err != nil {
						return err
					}
					ids, svcs := splitList(c.String("identities")), splitList(c.String("services"))
					if len(ids) == 0 || len(svcs) == 0 {
						return usagef("--identities and --services: both required")
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						p, err := a.PutPolicy(ctx, name, api.PolicyRequest{Identities: ids, Services: svcs})
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "policy %s grants %s to reach %s at %s\n", p.Name, list(p.Identities), list(p.Services), p.HLC)
						return nil
					})
				},
			},
			{
				Name:      "rm",
				Usage:     "remove a policy: live connections it alone granted are closed",
				UsageText: "certmesh policy rm NAME --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags:     adminFlags(),
				Action: func(c *cli.Context) error {
					name, c, err := nameArg(c, "policy NAME")
					if err != nil {
						return err
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						p, err := a.DeletePolicy(ctx, name)
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "removed policy %s at %s\n", p.Name, p.HLC)
						return nil
					})
				},
			},
			{
				Name:      "ls",
				Usage:     "list the policies",
				UsageText: "certmesh policy ls --controller URL --ca FILE --admin-cert F --admin-key F",
				Flags:     adminFlags(),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						l, err := a.Policies(ctx)
						if err != nil {
							return err
						}
						var rows [][]string
						for _, p := range l.Policies {
							rows = append(rows, []string{p.Name, list(p.Identities), list(p.Services), p.HLC})
						}
						table(stdout, "NAME\tIDENTITIES\tSERVICES\tHLC", rows)
						return nil
					})
				},
			},
		},
	}
}

func identityCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "identity",
		Usage: "the roles an admin gives an identity (admin)",
		Subcommands: []*cli.Command{
			{
				Name:      "roles",
				Usage:     "print, or with --set replace, the roles an admin gave an identity",
				UsageText: "certmesh identity roles ID [--set R,...] --controller URL --ca FILE --admin-cert F --admin-key F",
				Description: "The roles apply to the identity's live sessions at once, besides those its token claimed at\n" +
					"login (roles_claim). --set '' clears them.",
				Flags: adminFlags(&cli.StringFlag{Name: "set", Usage: "replace the roles by `R,...` ('' clears them)"}),
				Action: func(c *cli.Context) error {
					id, c, err := nameArg(c, "identity ID")
					if err != nil {
						return err
					}
					return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
						var r *api.IdentityRoles
						var err error
						if c.IsSet("set") {
							r, err = a.SetIdentityRoles(ctx, id, splitList(c.String("set")))
						} else {
							r, err = a.IdentityRoles(ctx, id)
						}
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "identity %s roles %s\n", r.Identity, list(r.Roles))
						return nil
					})
				},
			},
		},
	}
}

func accessCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "access",
		Usage:     "list the services an identity may reach now, and through which policies (admin)",
		UsageText: "certmesh access ID --controller URL --ca FILE --admin-cert F --admin-key F",
		Flags:     adminFlags(),
		Action: func(c *cli.Context) error {
			id, c, err := nameArg(c, "identity ID")
			if err != nil {
				return err
			}
			return withAdmin(c, func(ctx context.Context, a *client.Admin) error {
				l, err := a.AccessOf(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "identity %s roles %s session roles %s\n", l.Identity, list(l.Roles), list(l.SessionRoles))
				var rows [][]string
				for _, g := range l.Services {
					rows = append(rows, []string{g.Service, g.Address, list(g.Policies)})
				}
				table(stdout, "SERVICE\tADDRESS\tPOLICIES", rows)
				return nil
			})
		},
	}
}
