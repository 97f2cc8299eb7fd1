package worker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
)

// hangingEngine writes a fake engine into a temporary directory: a shell
// script that starts a grandchild holding its standard output (as
// apertium's pipeline of processes does), appends its own pid and the
// grandchild's to the file it returns, and waits. The
// test's cleanup kills whatever of them is left, so that a failing test
// does not leave them behind.
func hangingEngine(t *testing.T) (command, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	command, pidFile = filepath.Join(dir, "engine"), filepath.Join(dir, "pids")
	script := "#!/bin/sh\n" +
		"echo $$ >> " + pidFile + "\n" +
		"sleep 300 &\n" +
		"echo $! >> " + pidFile + "\n" +
		"wait\n"
	if err := os.WriteFile(command, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range readPids(t, pidFile) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return command, pidFile
}

// readPids returns the pids in file, none if it does not exist yet.
func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file %q", b)
		}
		pids = append(pids, pid)
	}
	return pids
}

// alive reports whether a process exists and is not a zombie (an orphan
// waits to be reaped by pid 1, which in a container may never do it).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last parenthesis.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// callEngine runs a translation with the fake engine in the background
// and returns its result channel.
func callEngine(ctx context.Context, a *worker.Apertium) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := a.Translate(ctx, "let us pray", "en", "es")
		done <- err
	}()
	return done
}

// returnsPromptly waits for the call to end; the fake engine's grandchild
// would keep it 300 s.
func returnsPromptly(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the engine call did not return after its context ended")
		return nil
	}
}

// noneLeft fails unless every pid in the file has gone.
func noneLeft(t *testing.T, pidFile string, want int) {
	t.Helper()
	pids := readPids(t, pidFile)
	if len(pids) < want {
		t.Fatalf("the fake engine wrote pids %v, want %d", pids, want)
	}
	poll(t, 10*time.Second, "every process of the engine to end", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// TestEngineCancel: cancelling a call to an offline engine ends the whole
// process group, so the call returns at once even though a grandchild
// holds the engine's standard output.
func TestEngineCancel(t *testing.T) {
	command, pidFile := hangingEngine(t)
	a := &worker.Apertium{Command: command, Modes: map[worker.Pair]string{{From: "en", To: "es"}: "eng-spa"}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := callEngine(ctx, a)
	poll(t, 10*time.Second, "the fake engine to start its grandchild", func() bool { return len(readPids(t, pidFile)) == 2 })
	cancel()
	err := returnsPromptly(t, done)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	noneLeft(t, pidFile, 2)
}

// TestEngineTimeout: a call that outlives the engine's Timeout ends the
// same way, with an error that says so.
func TestEngineTimeout(t *testing.T) {
	command, pidFile := hangingEngine(t)
	a := &worker.Apertium{Command: command, Modes: map[worker.Pair]string{{From: "en", To: "es"}: "eng-spa"}, Timeout: time.Second}
	err := returnsPromptly(t, callEngine(context.Background(), a))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1s") {
		t.Errorf("error %v, want a timeout after 1s", err)
	}
	// The script may not have got as far as its grandchild within the
	// second on a loaded machine; whatever it started must be gone.
	noneLeft(t, pidFile, 0)
}

// TestEngineErrorWithoutInput: an engine that fails with its input echoed
// on standard error gives an error (which the worker logs at warn level)
// without that input; the error output stays available as ProcessError's
// Stderr, for the debug log.
func TestEngineErrorWithoutInput(t *testing.T) {
	command := filepath.Join(t.TempDir(), "engine")
	script := "#!/bin/sh\necho 'engine: cannot parse input:' >&2\ncat >&2\nexit 3\n"
	if err := os.WriteFile(command, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	const secret = "the confession of Brother Anselm"
	a := &worker.Apertium{Command: command, Modes: map[worker.Pair]string{{From: "en", To: "es"}: "eng-spa"}}
	_, err := a.Translate(context.Background(), secret, "en", "es")
	if err == nil {
		t.Fatal("a failing engine succeeded")
	}
	if strings.Contains(err.Error(), "Anselm") {
		t.Errorf("error %q contains the engine's input", err)
	}
	if !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %q does not give the exit status", err)
	}
	var pe *worker.ProcessError
	if !errors.As(err, &pe) || !strings.Contains(pe.Stderr, secret) {
		t.Errorf("error %#v does not keep the error output", err)
	}
}
