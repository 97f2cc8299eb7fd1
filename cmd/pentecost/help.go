package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Every command's --help has one layout, printed by printHelp:
//
//	Usage: pentecost token [flags]
//
//	One sentence saying what the command does.
//
//	Optional details.
//
//	Flags:
//	  --data-dir DIR
//	      what it sets
//	      env PENTECOST_DATA_DIR, default ./pentecost-data
//
// --help and -h print it on stdout and exit 0; a flag the command does not
// know prints it on stderr and exits 2.

// helpWidth is where flag descriptions wrap.
const helpWidth = 80

// flagDoc is one flag as --help shows it.
type flagDoc struct {
	Name  string // without dashes
	Value string // placeholder for its value, e.g. DIR; "" for a switch
	Usage string
	Env   string // environment variable it can be set with, if any
	Def   string // default; "" and "false" are not shown
}

// command is one subcommand's help and how its flags are read.
type command struct {
	Name    string // as typed after pentecost, e.g. "token"
	Args    string // what follows the name in the usage line
	Summary string // one sentence
	Details string // optional text between the summary and the flags
	// Env names the environment variable of a flag, read when the flag is
	// not given on the command line.
	Env map[string]string
}

// commands lists the subcommands for `pentecost help`, in that order.
var commands = []*command{serveCommand, workerCommand, tokenCommand, usersCommand, benchCommand, versionCommand, healthcheckCommand}

// printHelp prints a command's help in the common layout.
func printHelp(w io.Writer, c *command, flags []flagDoc) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\n", strings.TrimSpace("pentecost "+c.Name+" "+c.Args), c.Summary)
	if c.Details != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimRight(c.Details, "\n"))
	}
	fmt.Fprintln(w, "Flags:")
	for _, f := range flags {
		fmt.Fprintf(w, "  --%s", f.Name)
		if f.Value != "" {
			fmt.Fprintf(w, " %s", f.Value)
		}
		fmt.Fprintln(w)
		for _, line := range wrap(f.Usage, helpWidth-6) {
			fmt.Fprintf(w, "      %s\n", line)
		}
		var where []string
		if f.Env != "" {
			where = append(where, "env "+f.Env)
		}
		if f.Def != "" && f.Def != "false" {
			where = append(where, "default "+f.Def)
		}
		if line := strings.Join(where, ", "); len(where) > 1 && len(line) <= helpWidth-6 {
			where = []string{line}
		}
		for _, line := range where {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
	fmt.Fprintf(w, "  -h, --help\n      print this help\n")
}

// flagDocs describes the flags of fs, in its (alphabetical) order. A
// placeholder for a flag's value is taken from `quotes` in its usage, as
// the flag package does, or else from its type.
func (c *command) flagDocs(fs *flag.FlagSet) []flagDoc {
	var out []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && bf.IsBoolFlag() {
			value = ""
		}
		def := f.DefValue
		if strings.Contains(usage, "(default:") {
			def = "" // the usage says it better, e.g. "(default: this one)"
		}
		out = append(out, flagDoc{Name: f.Name, Value: strings.ToUpper(value), Usage: usage, Env: c.Env[f.Name], Def: def})
	})
	return out
}

// parse reads args into fs, then sets each flag not given from its
// environment variable. --help prints the help on stdout and returns
// flag.ErrHelp; a bad flag prints it on stderr and returns a usageError.
func (c *command) parse(fs *flag.FlagSet, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// The flag package's own messages would repeat the error main prints.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, c, c.flagDocs(fs))
		return err
	}
	if err != nil {
		printHelp(stderr, c, c.flagDocs(fs))
		return usageError{err.Error()}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	names := make([]string, 0, len(c.Env))
	for name := range c.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env := c.Env[name]
		if v := getenv(env); v != "" && !given[name] {
			if err := fs.Set(name, v); err != nil {
				return usageError{fmt.Sprintf("invalid %s value %q: %v", env, v, err)}
			}
		}
	}
	return nil
}

// printCommands is `pentecost help`.
func printCommands(w io.Writer) {
	fmt.Fprint(w, "Usage: pentecost COMMAND [flags]\n\nPentecost: live multilingual audio broadcasting.\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, c.Summary)
	}
	fmt.Fprint(w, "  help     Print this list, or with a command's name its help.\n\n"+
		"pentecost --version is pentecost version; pentecost COMMAND --help prints a command's flags.\n")
}

// wrap splits text into lines of at most width runes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len([]rune(line))+1+len([]rune(word)) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
