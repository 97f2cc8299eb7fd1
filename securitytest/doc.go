// Package securitytest attacks a real Pentecost server on loopback, the way
// a hostile client would, one test per hole that an adversarial audit
// found (see docs/security.md). Each test performs the attack and checks
// that the server refuses it with its documented answer while everyone
// else carries on. Attacks that need several nodes sharing Redis live in
// cluster/, beside the other whole-binary tests. Only tests use it.
package securitytest
