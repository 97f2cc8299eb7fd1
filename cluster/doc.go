// Package cluster holds the multi-node integration tests: they build the
// pentecost binary, start a real redis-server and several `pentecost serve
// --redis` nodes as child processes on loopback ports, and check fan-out,
// resume and counts across nodes, node crashes (kill -9) and Redis
// restarts. It has no code of its own; run it with go test ./cluster/.
package cluster
