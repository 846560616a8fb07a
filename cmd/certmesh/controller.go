package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/gossip"
	"github.com/certmesh/certmesh/issuer"
)

// shutdownTimeout bounds a graceful shutdown: requests in flight finish,
// what they wrote is committed, the mesh announces the leave.
const shutdownTimeout = 15 * time.Second

// logFlags are the logging flags of the long-running modes.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"CERTMESH_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: []string{"CERTMESH_LOG_FORMAT"}},
	}
}

// newLogger builds the logger of the logging flags, writing to w.
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usagef("--log-level: %q is not debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format: %q is not text or json", c.String("log-format"))
}

func controllerCommand(stdout, stderr io.Writer) *cli.Command {
	def := config.DefaultController()
	flags := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "controller configuration `FILE` (YAML, SPEC.md section 3)", EnvVars: []string{"CERTMESH_CONFIG"}},
	}
	flags = append(flags, logFlags()...)
	flags = append(flags, config.Flags(def)...)
	return &cli.Command{
		Name:      "controller",
		Usage:     "run a controller: authenticate clients, issue their certificates, replicate the state",
		UsageText: "certmesh controller --config FILE [--section.field VALUE ...]",
		Description: "Every setting of the config file can also be given as a flag --section.field or an environment\n" +
			"variable CERTMESH_SECTION_FIELD (flag > environment > file > default); paths in the file are relative to it.\n" +
			"SIGHUP reloads the key files (gossip keyring, signing key, CA bundle, JWT keys); SIGINT and SIGTERM shut down gracefully.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			cfg := config.DefaultController()
			if err := config.Load(&cfg, config.Loader{File: c.String("config"), Flags: config.FlagValues(c, def)}); err != nil {
				return err
			}
			log, err := newLogger(c, stderr)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return runController(ctx, cfg, log, hup)
		},
	}
}

// runController runs a controller until ctx ends, reloading its key files
// on each value from hup.
func runController(ctx context.Context, cfg config.Controller, log *slog.Logger, hup <-chan os.Signal) error {
	keys, err := gossip.LoadKeyFile(cfg.Mesh.KeyFile)
	if err != nil {
		return &issuer.ConfigError{Field: "mesh.key_file", Err: err}
	}
	ctrl, err := issuer.Open(cfg, issuer.Options{Logger: log})
	if err != nil {
		return err
	}
	closeCtrl := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return ctrl.Close(sctx)
	}
	mesh, err := ctrl.NewMesh(ctrl.MeshConfig(keys))
	if err != nil {
		closeCtrl()
		return fmt.Errorf("mesh: %w", err)
	}
	if err := ctrl.Start(mesh); err != nil {
		closeCtrl()
		mesh.Close()
		return err
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			err := closeCtrl()
			if merr := mesh.Close(); merr != nil && !errors.Is(merr, gossip.ErrClosed) {
				err = errors.Join(err, merr)
			}
			if err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		case <-hup:
			log.Info("SIGHUP: reloading key files")
			ctrl.Reload() // logs what it could not reload; the old material stays in use
		}
	}
}
