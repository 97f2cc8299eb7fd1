package realtime

import (
	"context"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// A speaker's token is verified when the connection joins, and again every
// AccountCheckInterval while it lives, by the same Verifier and so the same
// rules as a join or an HTTP request: once a new join would refuse the
// token (its account removed, its password set since the token was issued,
// or the token expired, leeway included) the connection is closed with
// CloseTokenInvalid. The embedded issuer reads the shared store, so an
// account removed on any node ends its connections on every node.
//
// A check that cannot be answered (the store or an issuer's keys
// unavailable) keeps the connection: refusing every speaker during a store
// outage would turn it into an outage of every broadcast.

// Bounds of one round of checks, so that a slow store neither holds up the
// ticker nor piles up goroutines: rounds run one at a time, each with at
// most accountCheckers verifications in flight, each at most
// accountCheckTimeout long.
const (
	accountCheckers     = 4
	accountCheckTimeout = 5 * time.Second
)

// accountChecks holds the live speaker connections and their tokens.
type accountChecks struct {
	mu      sync.Mutex
	tokens  map[*conn]string
	running bool // a round is in progress
	failing bool // the last round could not verify some token (logged once)
	rounds  sync.WaitGroup
}

// watchAccount has c's token checked from now on; c has joined as a speaker.
func (s *Server) watchAccount(c *conn, token string) {
	if s.AccountCheckInterval <= 0 {
		return
	}
	a := &s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tokens == nil {
		a.tokens = make(map[*conn]string)
	}
	a.tokens[c] = token
}

// unwatchAccount stops checking c.
func (s *Server) unwatchAccount(c *conn) {
	a := &s.accounts
	a.mu.Lock()
	delete(a.tokens, c)
	a.mu.Unlock()
}

// checkAccounts starts a round of checks unless one is still running. It
// runs on the ticker and never waits for the store.
func (s *Server) checkAccounts() {
	a := &s.accounts
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.running || len(a.tokens) == 0 {
		return
	}
	a.running = true
	work := make([]accountWork, 0, len(a.tokens))
	for c, tok := range a.tokens {
		work = append(work, accountWork{c, tok})
	}
	a.rounds.Add(1)
	go s.accountRound(work)
}

type accountWork struct {
	c     *conn
	token string
}

// accountRound checks every connection of work, accountCheckers at a time.
func (s *Server) accountRound(work []accountWork) {
	a := &s.accounts
	defer a.rounds.Done()
	next := make(chan accountWork)
	var mu sync.Mutex
	var failed int
	var firstErr error
	var wg sync.WaitGroup
	for range min(accountCheckers, len(work)) {
		wg.Go(func() {
			for w := range next {
				if err := s.checkAccount(w.c, w.token); err != nil {
					mu.Lock()
					failed++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, w := range work {
		next <- w
	}
	close(next)
	wg.Wait()

	a.mu.Lock()
	a.running = false
	was := a.failing
	a.failing = failed > 0
	a.mu.Unlock()
	switch {
	case s.ctx.Err() != nil: // shutting down: the failures are ours
	case failed > 0 && !was:
		s.Logger.Warn("cannot check speakers' tokens; their connections stay open until checks succeed",
			"failed", failed, logError, firstErr)
	case failed == 0 && was:
		s.Logger.Info("speakers' tokens can be checked again")
	}
}

// checkAccount verifies c's token again and closes c when it is refused.
// It returns the error of a check that could not be answered; c then stays.
func (s *Server) checkAccount(c *conn, token string) error {
	if c.isClosing() {
		s.unwatchAccount(c)
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, accountCheckTimeout)
	defer cancel()
	_, err := s.Verifier.VerifyToken(ctx, token)
	switch pentecost.ErrorCode(err) {
	case "":
		return nil
	case pentecost.EAUTHINVALID, pentecost.EAUTHREQUIRED:
		s.unwatchAccount(c)
		c.log.Info("speaker token no longer valid", logSession, c.sessionID())
		s.metrics.tokenInvalid.Inc()
		// The same error a join with this token now gets, so that clients
		// that handle a refused join (sign in again) handle this too.
		c.send(errorObj(err, c.sessionID()))
		c.closeWith(CloseTokenInvalid, "token no longer valid")
		return nil
	}
	s.metrics.accountCheckFailed.Inc()
	return err
}

// tokenInvalid reports whether c is being closed because its token no
// longer holds. Its reader may still hand over what the client sent
// before it saw the close; none of that is acted on.
func (c *conn) tokenInvalid() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closing && c.closeCode == CloseTokenInvalid
}
