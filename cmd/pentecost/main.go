// Command pentecost runs the Pentecost server and its administration tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// main only handles signals and the exit code; Main does the work.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one kills at once (the default
		// behaviour) instead of waiting for the drain to finish.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "pentecost:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 0 after --help, 2 for usage errors, 1 for everything else.
func exitCode(err error) int {
	var u usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run dispatches a command line; it is what tests call.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printCommands(stderr)
		return usageError{"no command given"}
	}
	name := args[0]
	switch name {
	case "-version", "--version":
		name = "version"
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" && !wantsHelp(args[1:2]) {
			// pentecost help serve is pentecost serve --help.
			return run(ctx, []string{args[1], "--help"}, getenv, stdin, stdout, stderr)
		}
		printCommands(stdout)
		return flag.ErrHelp
	}
	// Only the commands listed run, so that each is in `pentecost help` and
	// its --help is checked by TestHelp.
	for _, c := range commands {
		if c.Name != name {
			continue
		}
		switch c {
		case serveCommand:
			return runServe(ctx, args[1:], getenv, stdout, stderr)
		case tokenCommand:
			return runToken(ctx, args[1:], getenv, stdout, stderr)
		case usersCommand:
			return runUsers(ctx, args[1:], getenv, stdin, stdout, stderr)
		case workerCommand:
			return runWorker(ctx, args[1:], getenv, stdout, stderr)
		case benchCommand:
			return runBench(ctx, args[1:], stdout, stderr)
		case versionCommand:
			return runVersion(args[1:], stdout, stderr)
		case healthcheckCommand:
			return runHealthcheck(ctx, args[1:], getenv, stdout, stderr)
		}
		return fmt.Errorf("command %s has no implementation", name)
	}
	printCommands(stderr)
	return usageError{fmt.Sprintf("unknown command %q", name)}
}

// runServe runs the server until ctx is cancelled (SIGTERM/SIGINT).
func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if wantsHelp(args) {
		printServeUsage(stdout)
		return flag.ErrHelp
	}
	cfg, err := LoadConfig(args, getenv, stderr)
	if err != nil {
		return usageError{err.Error()}
	}
	m := NewMain(cfg, stdout, stderr)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.Logger.Info("shutting down: asking clients to move, then closing", "timeout", cfg.ShutdownTimeout.String())
	err = m.Close()
	m.Logger.Info("stopped")
	return err
}

// wantsHelp reports whether args ask for help, so that it goes to stdout
// and exits 0 like other tools' --help.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}
