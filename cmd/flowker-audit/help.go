package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flowker-audit/flowker-audit/config"
)

// cmdHelp is what a subcommand's --help prints besides its flags.
type cmdHelp struct {
	usage   string // the synopsis after "flowker-audit "
	what    string // what it does
	example string // one or more example command lines
}

// command is a subcommand's flag set: --help prints the description, the flags and an example on
// stdout and exits 0; a flag error prints the synopsis on stderr and exits 2.
type command struct {
	*flag.FlagSet
	help   cmdHelp
	stdout io.Writer
}

func newCommand(name string, h cmdHelp, stdout, stderr io.Writer) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &command{FlagSet: fs, help: h, stdout: stdout}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: flowker-audit %s\n(flowker-audit %s --help for more)\n", h.usage, name)
	}
	return c
}

// configFlag adds --config, defaulting to $FLOWKER_AUDIT_CONFIG or config.yaml.
func (c *command) configFlag() *string {
	def := "config.yaml"
	if p := os.Getenv(config.EnvConfig); p != "" {
		def = p
	}
	return c.String("config", def, "configuration file (default from "+config.EnvConfig+" when set)")
}

// printHelp writes the full help to w.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: flowker-audit %s\n\n%s\n", c.help.usage, strings.TrimSpace(c.help.what))
	n := 0
	c.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		out := c.Output()
		c.SetOutput(w)
		c.PrintDefaults()
		c.SetOutput(out)
	}
	if c.help.example != "" {
		fmt.Fprintf(w, "\nexample:\n%s\n", indent(strings.TrimSpace(c.help.example)))
	}
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// parse parses args; --help (or -h) prints the help on stdout and ends with exit 0.
func (c *command) parse(args []string) error {
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		if a == "-h" || a == "--h" || a == "-help" || a == "--help" {
			c.printHelp(c.stdout)
			return exitError{code: 0}
		}
	}
	if err := c.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printHelp(c.stdout)
			return exitError{code: 0}
		}
		return exitError{code: 2}
	}
	return nil
}
