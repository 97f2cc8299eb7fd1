package client

// SetHook makes a Listener, Speaker or Worker call f at named points of
// its connection handling, without locks held; set it before Open. Points:
// "switch" (a refresh is about to switch connections), "switching" (writes
// are held for the new connection), "installed" (a connection became
// current and held writes went to it), "prepare" (a Worker's prepare copied
// its subscriptions and claims), "wait" (a Worker request waits for a
// connection).
func SetHook(client any, f func(point string)) {
	switch x := client.(type) {
	case *Listener:
		x.b.hook = f
	case *Speaker:
		x.b.hook = f
	case *Worker:
		x.b.hook = f
	default:
		panic("SetHook: not a client")
	}
}

// CallbacksHeld reports whether w's callback lock is held, by anyone.
func CallbacksHeld(w *Worker) bool {
	if w.b.cbMu.TryLock() {
		w.b.cbMu.Unlock()
		return false
	}
	return true
}
