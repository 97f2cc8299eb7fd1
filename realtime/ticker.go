package realtime

import (
	"math"
	"time"
)

// tick runs the server's timers: pings, idle timeouts, connection age
// (refresh, warning, maximum), periodic speaker status, batched listener
// counts, worker demand and speakers' tokens. One goroutine scans every
// connection, instead of a timer per connection, to keep idle connections
// cheap.
func (s *Server) tick() {
	defer close(s.done)
	defer s.accounts.rounds.Wait() // Close waits for done: no round outlives it
	period := s.tickPeriod()
	t := time.NewTicker(period)
	defer t.Stop()
	var lastFlush, lastWorkers, lastAccounts time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := s.Now()
		s.checkConns(now)
		s.periodicStatus(s.ctx, now)
		if now.Sub(lastFlush) >= s.CountFlushInterval {
			lastFlush = now
			s.hub.flushCounts(s.ctx)
		}
		if now.Sub(lastWorkers) >= s.WorkerUpdateInterval {
			lastWorkers = now
			s.updateWorkers(s.ctx)
		}
		if s.AccountCheckInterval > 0 && now.Sub(lastAccounts) >= s.AccountCheckInterval {
			lastAccounts = now
			s.checkAccounts() // the store is read off this goroutine
		}
	}
}

// tickPeriod is a quarter of the shortest interval to honour, between 10 ms
// and one second.
func (s *Server) tickPeriod() time.Duration {
	p := time.Second
	for _, d := range []time.Duration{s.HeartbeatInterval, s.HeartbeatTimeout, s.RefreshAfter, s.WarningAfter,
		s.MaxConnDuration, s.StatusInterval, s.CountFlushInterval, s.WorkerUpdateInterval, s.AccountCheckInterval} {
		if d > 0 && d/4 < p {
			p = d / 4
		}
	}
	return max(p, 10*time.Millisecond)
}

func (s *Server) checkConns(now time.Time) {
	real := time.Now()
	for _, c := range s.hub.allConns() {
		if !c.joined.Load() || c.isClosing() {
			continue
		}
		if s.HeartbeatTimeout > 0 && real.Sub(time.Unix(0, c.lastRead.Load())) > s.HeartbeatTimeout {
			c.log.Debug("idle timeout")
			c.closeWith(CloseIdle, "idle timeout")
			continue
		}
		age := now.Sub(c.opened)
		if s.MaxConnDuration > 0 && age >= s.MaxConnDuration {
			c.closeWith(CloseMaxDuration, "maximum connection duration")
			continue
		}
		if s.HeartbeatInterval > 0 && now.Sub(c.lastPing) >= s.HeartbeatInterval {
			c.lastPing = now
			c.enqueue(controlMsg(opPing, nil))
		}
		if s.RefreshAfter > 0 && !c.refreshSent.Load() && age >= s.RefreshAfter {
			s.sendRefreshRequired(c)
		}
		if s.WarningAfter > 0 && !c.warnedSent && age >= s.WarningAfter {
			c.warnedSent = true
			o := obj{"type": "connectionWarning", "sessionId": c.sessionID(), "remainingMinutes": 0}
			if s.MaxConnDuration > 0 {
				o["remainingMinutes"] = int(math.Ceil((s.MaxConnDuration - age).Minutes()))
			}
			c.send(o)
		}
	}
}

// sendRefreshRequired asks a client to open a refresh connection. A
// connection still finishing its join (its reply may already be on the
// wire) gets the request from ServeHTTP once joined is set; the
// CompareAndSwap keeps the two paths from sending it twice.
func (s *Server) sendRefreshRequired(c *conn) {
	c.refreshSent.Store(true)
	if !c.joined.Load() || !c.refreshDelivered.CompareAndSwap(false, true) {
		return
	}
	switch c.role {
	case roleListener:
		c.send(obj{"type": "connectionRefreshRequired", "sessionId": c.sessionID(), "role": "listener", "targetLanguage": c.listenLanguage()})
	case roleSpeaker:
		c.send(obj{"type": "connectionRefreshRequired", "sessionId": c.sessionID(), "role": "speaker"})
	case roleWorker:
		c.send(obj{"type": "connectionRefreshRequired", "role": "worker"})
	}
}

// listenLanguage reads a listener's language under its session's lock.
func (c *conn) listenLanguage() string {
	hs := c.session
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return c.language
}
