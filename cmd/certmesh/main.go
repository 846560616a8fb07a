// Command certmesh is the single certmesh binary (its --help): a
// controller or a router, the PKI tools, and the client commands.
//
// Each command lives in its own file as a function returning *cli.Command,
// listed in commands below. Exit codes: 0 success, 1 runtime failure, 2 bad
// usage or configuration. An error is printed to stderr as one line naming
// the file, field or flag at fault. Any error out of urfave/cli's own
// parsing (unknown flags or commands, missing required flags) and any
// usage or configuration error out of an action exits 2; every other error
// out of an action exits 1.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/certmesh/certmesh/config"
	"github.com/certmesh/certmesh/internal/version"
	"github.com/certmesh/certmesh/issuer"
	"github.com/certmesh/certmesh/node"
)

// commands lists the subcommands of certmesh, each built in its own file.
// Add new ones here.
func commands(stdout, stderr io.Writer) []*cli.Command {
	return []*cli.Command{
		devCommand(stdout, stderr),
		controllerCommand(stdout, stderr),
		pkiCommand(stdout, stderr),
		routerCommand(stdout, stderr),
		loginCommand(stdout),
		rotateCommand(stdout),
		refreshCommand(stdout),
		revokeCommand(stdout),
		serviceCommand(stdout),
		policyCommand(stdout),
		identityCommand(stdout),
		accessCommand(stdout),
		statusCommand(stdout),
		benchCommand(stdout, stderr),
	}
}

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main with its streams and exit code, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(flagsFirst(app, args))
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "certmesh: %s\n", oneLine(err.Error()))
	return exitCode(err)
}

// Exit codes (its --help).
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks an action's error as bad usage or bad configuration
// (exit 2). *config.Error, *issuer.ConfigError and *node.ConfigError
// count as such too.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error (exit 2); name the flag at fault.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// runtimeError marks an action's error as a runtime failure (exit 1).
type runtimeError struct{ err error }

func (e runtimeError) Error() string { return e.err.Error() }
func (e runtimeError) Unwrap() error { return e.err }

func isUsage(err error) bool {
	var ue usageError
	var ce *config.Error
	var ie *issuer.ConfigError
	var ne *node.ConfigError
	return errors.As(err, &ue) || errors.As(err, &ce) || errors.As(err, &ie) || errors.As(err, &ne)
}

func exitCode(err error) int {
	var re runtimeError
	if errors.As(err, &re) && !isUsage(err) {
		return exitRuntime
	}
	return exitUsage
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "certmesh",
		Usage: "short-lived client certificates kept consistent across a leaderless, multi-region control plane",
		Description: "certmesh runs as a controller (issues certificates, writes them to a replicated CRDT) or a router\n" +
			"(admits clients from the replicated state). Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.",
		Version:        version.String(),
		Writer:         stdout,
		ErrWriter:      stderr,
		Commands:       commands(stdout, stderr),
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the exit code
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q; see certmesh --help", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, cmd := range app.Commands {
		prepare(cmd)
	}
	return app
}

// prepare makes a command and its subcommands report usage errors as
// such and mark their actions' other errors as runtime failures.
func prepare(cmd *cli.Command) {
	if cmd.OnUsageError == nil {
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	}
	if action := cmd.Action; action != nil {
		cmd.Action = func(c *cli.Context) error {
			err := action(c)
			if err == nil || isUsage(err) {
				return err
			}
			return runtimeError{err}
		}
	} else if len(cmd.Subcommands) > 0 {
		// `certmesh help pki` lists pki's commands as `certmesh pki
		// --help` does: urfave/cli's template lists them by category,
		// which a command has only once it has run.
		if cmd.CustomHelpTemplate == "" {
			cmd.CustomHelpTemplate = strings.Replace(cli.SubcommandHelpTemplate,
				`{{template "visibleCommandCategoryTemplate" .}}`, `{{template "visibleCommandTemplate" .}}`, 1)
		}
		cmd.Action = func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q; see certmesh %s --help", c.Args().First(), cmd.Name)
			}
			return cli.ShowSubcommandHelp(c)
		}
	}
	for _, sub := range cmd.Subcommands {
		prepare(sub)
	}
}

// noArgs refuses positional arguments.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("unexpected argument %q", c.Args().First())
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, w := range strings.Split(s, ",") {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}
