package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/node"
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
		&cli.StringFlag{Name: "config", Usage: "controller configuration `FILE` (YAML; every setting is listed below, and docs/deploy.md has an example)", EnvVars: []string{"CERTMESH_CONFIG"}},
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
			return serve(c, stderr, func(ctx context.Context, log *slog.Logger, hup <-chan os.Signal) error {
				return runController(ctx, cfg, log, hup)
			})
		},
	}
}

// serve runs a long-running mode: fn runs with the logger of the logging
// flags until SIGINT or SIGTERM ends ctx; each SIGHUP arrives on hup.
func serve(c *cli.Context, stderr io.Writer, fn func(ctx context.Context, log *slog.Logger, hup <-chan os.Signal) error) error {
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return fn(ctx, log, hup)
}

// runController runs a controller until ctx ends, reloading its key files
// on each value from hup.
func runController(ctx context.Context, cfg config.Controller, log *slog.Logger, hup <-chan os.Signal) error {
	ctrl, err := node.StartController(cfg, issuer.Options{Logger: log})
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := ctrl.Close(sctx); err != nil {
				return fmt.Errorf("shutdown: %w", err)
			}
			return nil
		case err := <-ctrl.Mesh.NameConflict():
			log.Error("stopping: another node has this name", "err", err)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			ctrl.Close(sctx)
			return &node.ConfigError{Field: "node.name", Err: err}
		case <-hup:
			log.Info("SIGHUP: reloading key files")
			ctrl.Reload() // logs what it could not reload; the old material stays in use
		}
	}
}
