package refdoc

import (
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// CommandsTable lists the visible commands of app, subcommands under
// their parents: command, usage line, what it does.
func CommandsTable(app *cli.App) Table {
	tab := Table{Header: []string{"command", "usage", "does"}}
	visit(app, func(name string, c *cli.Command) {
		tab.Rows = append(tab.Rows, []string{Code(name), Code(c.UsageText), c.Usage})
	})
	return tab
}

// visit calls fn with every visible command of app and its full name
// ("certmesh pki init"), parents before their subcommands.
func visit(app *cli.App, fn func(name string, c *cli.Command)) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			name := prefix + " " + c.Name
			fn(name, c)
			walk(name, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
}

// FlagsTable lists the visible flags of app and its commands: flag,
// default, environment variable, meaning. Flags of category skip (the
// generated config settings, listed elsewhere) are left out.
func FlagsTable(app *cli.App, skip string) Table {
	tab := Table{Header: []string{"flag", "default", "environment", "meaning"}}
	add := func(cmd string, flags []cli.Flag) {
		for _, f := range flags {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok {
				continue
			}
			if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
				continue
			}
			if cf, ok := f.(cli.CategorizableFlag); ok && skip != "" && cf.GetCategory() == skip {
				continue
			}
			name := f.Names()[0]
			if name == "help" || name == "version" {
				continue
			}
			def := ""
			if df.TakesValue() {
				def = df.GetDefaultText()
				if u, err := strconv.Unquote(def); err == nil {
					def = u
				}
			}
			var env []string
			for _, e := range df.GetEnvVars() {
				env = append(env, Code("$"+e))
			}
			tab.Rows = append(tab.Rows, []string{Code(cmd + " --" + name), Code(def), strings.Join(env, ", "), df.GetUsage()})
		}
	}
	add(app.Name, app.Flags)
	visit(app, func(name string, c *cli.Command) { add(name, c.Flags) })
	return tab
}
