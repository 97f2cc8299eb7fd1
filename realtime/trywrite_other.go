//go:build !linux

package realtime

// canTryWrite says that tryWrite writes nothing here.
const canTryWrite = false

// tryWrite writes nothing outside Linux (trywrite_linux.go): every
// write goes to the connection's writer goroutine.
func (c *conn) tryWrite(*pass, []*wsMsg) (closing bool, audio int, written int64, done bool, err error) {
	return false, 0, 0, false, nil
}
