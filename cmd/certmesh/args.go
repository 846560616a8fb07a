package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst returns args with the flags of the command they run moved
// before its positional arguments, so that `pki rotate-controller NAME
// --dir D` means what `pki rotate-controller --dir D NAME` does.
//
// urfave/cli v2 parses a command's flags with the standard flag package,
// which stops at the first argument that is not a flag: every flag after
// NAME would be taken for a second positional argument. Moving them is
// done here, once, from the commands' own flag definitions (a flag that
// takes a value brings the next argument along, --flag=value stays one
// argument), so every command, present or future, accepts both orders.
// Everything after "--" stays positional and in place.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i := 1
	// Walk down the command names to the command that will run.
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if isFlag(a) {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
			continue
		}
		sub := findCommand(cmds, a)
		if sub == nil {
			break // the first positional argument of the command that runs
		}
		out = append(out, a)
		if len(sub.Subcommands) == 0 {
			i++
			flags, cmds = sub.Flags, nil
			break
		}
		cmds, flags = sub.Subcommands, sub.Flags
	}
	if cmds != nil {
		// The arguments go to a command with subcommands (an unknown
		// subcommand, say): leave them to it as they are.
		return append(out, args[i:]...)
	}
	var positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
		case isFlag(a):
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...)
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// takesValue reports whether the flag of argument a (-x, --x) is defined
// in flags and takes a value from the next argument.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			v, ok := f.(cli.DocGenerationFlag)
			return ok && v.TakesValue()
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
