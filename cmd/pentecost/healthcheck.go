package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

var healthcheckCommand = &command{
	Name: "healthcheck", Args: "[flags]",
	Summary: "GET a running server's /healthz and exit 0 if it answers 200, 1 otherwise.",
	Details: "It is the container's HEALTHCHECK: the image has no shell, curl or wget.\n" +
		"Without --url it checks http://127.0.0.1:PORT/healthz, PORT from\n" +
		"$PENTECOST_ADDR as serve reads it (:8080 when unset).",
}

// runHealthcheck checks a server on this machine the way a container
// runtime or a service manager would, without any tool besides this binary.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pentecost healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "`URL` to check")
	timeout := fs.Float64("timeout", 5, "give up after this many `SECONDS`")
	if err := healthcheckCommand.parse(fs, args, noEnvironment, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *timeout <= 0 {
		return usageError{"--timeout must be greater than 0"}
	}
	if *url == "" {
		addr := getenv("PENTECOST_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		u, err := healthzURL(addr)
		if err != nil {
			return usageError{fmt.Sprintf("PENTECOST_ADDR %q: %v; give --url", addr, err)}
		}
		*url = u
	}

	ctx, cancel := context.WithTimeout(ctx, time.Duration(*timeout*float64(time.Second)))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Sprintf("--url: %v", err)}
	}
	client := &http.Client{
		// A redirect (say to HTTPS) means this is not the health endpoint.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: %s\n", *url)
	return nil
}

// healthzURL turns a listen address such as ":8080" or "0.0.0.0:8080" into
// the loopback URL of its /healthz; a specific host is kept.
func healthzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "" || port == "0" {
		return "", errors.New("no fixed port")
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
