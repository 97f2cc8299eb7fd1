package uring

import "golang.org/x/sys/unix"

// Break closes r's descriptor under it, as if the kernel had taken the
// ring away: its next io_uring_enter fails.
func Break(r *Ring) { _ = unix.Close(r.fd); r.fd = -1 }
