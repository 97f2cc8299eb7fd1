//go:build !linux

package uring

// Ring is not available outside Linux.
type Ring struct{}

// New returns ErrUnsupported outside Linux.
func New(entries uint32) (*Ring, error) { return nil, ErrUnsupported }

// SendAll is never called: New returns no Ring.
func (r *Ring) SendAll(sends []Send) error { return ErrUnsupported }

// Close does nothing.
func (r *Ring) Close() error { return nil }
