//go:build !linux

package worker

import "os/exec"

// ownProcessGroup leaves cmd as it is: cancelling it kills cmd only, and
// run's WaitDelay stops waiting for children that hold its output.
func ownProcessGroup(cmd *exec.Cmd) {}

// endProcessGroup does nothing where there are no process groups to end.
func endProcessGroup(cmd *exec.Cmd) {}
