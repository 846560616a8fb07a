package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/node"
)

// routerShutdownTimeout bounds a router's graceful shutdown: stop
// accepting, leave the mesh, drain (router.Config.DrainTimeout).
const routerShutdownTimeout = 30 * time.Second

// routerCommand is `certmesh router --config FILE` (docs/deploy.md).
func routerCommand(stdout, stderr io.Writer) *cli.Command {
	def := config.DefaultRouter()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "router configuration `FILE` (YAML; every setting is listed below, and docs/deploy.md has an example)", EnvVars: []string{"CERTMESH_CONFIG"}},
	}
	flags = append(flags, logFlags()...)
	flags = append(flags, config.Flags(def)...)
	return &cli.Command{
		Name:      "router",
		Usage:     "run a router: admit client mTLS connections from the replicated state and proxy them to the upstream",
		UsageText: "certmesh router --config FILE [--section.field VALUE ...]",
		Description: "Every setting of the config file can also be given as a flag --section.field or an environment\n" +
			"variable CERTMESH_SECTION_FIELD (flag > environment > file > default); paths in the file are relative to it.\n" +
			"The router restores its state snapshot from node.data_dir first, so it admits at once even with no controller\n" +
			"reachable. SIGHUP reloads the CA bundle, the router certificate and the gossip keyring; SIGINT and SIGTERM\n" +
			"stop accepting, leave the mesh and drain live connections.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg := config.DefaultRouter()
			if err := config.Load(&cfg, config.Loader{File: c.String("config"), Flags: config.FlagValues(c, def)}); err != nil {
				return err
			}
			return serve(c, stderr, func(ctx context.Context, log *slog.Logger, hup <-chan os.Signal) error {
				return runRouter(ctx, cfg, log, hup)
			})
		},
	}
}

// runRouter runs a router until ctx ends, reloading its key files on each
// value from hup.
func runRouter(ctx context.Context, cfg config.Router, log *slog.Logger, hup <-chan os.Signal) error {
	r, err := node.StartRouter(cfg, log)
	if err != nil {
		return err
	}
	log.Info("router: started", "node", cfg.Node.Name, "listen", r.Addr().String(), "mesh", r.Mesh.Addr(),
		"restored_records", r.Restored)
	for {
		select {
		case <-hup:
			if err := r.Reload(); err != nil {
				log.Error("router: reload failed; the previous key material stays in use", "err", err)
			} else {
				log.Info("router: key files reloaded")
			}
		case err := <-r.Mesh.NameConflict():
			// Another live node holds this name: this one is the
			// newcomer, and steps down (mesh.Mesh.NameConflict).
			log.Error("router: stopping: another node has this name", "err", err)
			sctx, cancel := context.WithTimeout(context.Background(), routerShutdownTimeout)
			defer cancel()
			r.Close(sctx)
			return &node.ConfigError{Field: "node.name", Err: err}
		case <-ctx.Done():
			log.Info("router: shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), routerShutdownTimeout)
			defer cancel()
			return r.Close(sctx)
		}
	}
}
