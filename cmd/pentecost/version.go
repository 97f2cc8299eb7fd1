package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/pentecost/pentecost/buildinfo"
)

var versionCommand = &command{
	Name: "version", Args: "",
	Summary: "Print the version, commit and Go version this binary was built from.",
	Details: "pentecost --version prints the same. Release builds set the version with\n" +
		"-ldflags \"-X github.com/pentecost/pentecost/buildinfo.Version=v1.2.3\".",
}

// runVersion prints the build information.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pentecost version", flag.ContinueOnError)
	if err := versionCommand.parse(fs, args, noEnvironment, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	fmt.Fprint(stdout, buildinfo.Read())
	return nil
}

// noEnvironment is the getenv of commands no environment variable configures.
func noEnvironment(string) string { return "" }
