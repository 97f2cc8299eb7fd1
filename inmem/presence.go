package inmem

import (
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/pentecost/pentecost"
)

// Presence keeps listener presence and worker claims of one node in memory.
// One mutex guards everything: joins are short and a profile has not asked
// for more.
type Presence struct {
	mu       sync.Mutex
	sessions map[string]*presenceSession
	offers   map[string]pentecost.LanguageOffer // worker connection → offer
}

type presenceSession struct {
	conns  map[string]string // connID → stream name (language and codec)
	counts map[string]int    // stream name → listeners
	claims map[string]map[string]struct{}
	// speakers are the session's live speaker connections.
	speakers map[string]struct{}
}

// NewPresence returns an empty presence.
func NewPresence() *Presence {
	return &Presence{sessions: make(map[string]*presenceSession), offers: make(map[string]pentecost.LanguageOffer)}
}

func (p *Presence) session(id string, create bool) *presenceSession {
	s := p.sessions[id]
	if s == nil && create {
		s = &presenceSession{conns: make(map[string]string), counts: make(map[string]int)}
		p.sessions[id] = s
	}
	return s
}

// gc drops a session with no listeners, claims or speakers so the map does
// not grow.
func (p *Presence) gc(id string, s *presenceSession) {
	if len(s.conns) == 0 && len(s.claims) == 0 && len(s.speakers) == 0 {
		delete(p.sessions, id)
	}
}

func (s *presenceSession) snapshot() pentecost.PresenceCounts {
	if s == nil {
		return pentecost.CountsByStream(0, nil)
	}
	return pentecost.CountsByStream(len(s.conns), s.counts)
}

// Join implements pentecost.Presence.
func (p *Presence) Join(ctx context.Context, e pentecost.PresenceEntry, max int, refresh bool) (pentecost.PresenceCounts, error) {
	if e.SessionID == "" || e.ConnID == "" {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session and connection are required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(e.SessionID, true)
	name := e.StreamName()
	if old, ok := s.conns[e.ConnID]; ok {
		s.move(e.ConnID, old, name)
		return s.snapshot(), nil
	}
	if max > 0 && !refresh && len(s.conns) >= max {
		p.gc(e.SessionID, s)
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ESESSIONFULL, "Session is full.")
	}
	s.conns[e.ConnID] = name
	s.counts[name]++
	return s.snapshot(), nil
}

// Replace implements pentecost.Presence. One process holds every
// connection, so nothing can put a replaced one back.
func (p *Presence) Replace(ctx context.Context, oldConnID string, e pentecost.PresenceEntry) (pentecost.PresenceCounts, error) {
	if e.SessionID == "" || e.ConnID == "" || oldConnID == "" || oldConnID == e.ConnID {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session, connection and a different old connection are required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(e.SessionID, false)
	if s == nil {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "The connection to replace is not present.")
	}
	oldLang, ok := s.conns[oldConnID]
	if !ok {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "The connection to replace is not present.")
	}
	delete(s.conns, oldConnID)
	if s.counts[oldLang]--; s.counts[oldLang] <= 0 {
		delete(s.counts, oldLang)
	}
	name := e.StreamName()
	if cur, ok := s.conns[e.ConnID]; ok {
		s.move(e.ConnID, cur, name)
	} else {
		s.conns[e.ConnID] = name
		s.counts[name]++
	}
	return s.snapshot(), nil
}

func (s *presenceSession) move(connID, from, to string) {
	if from == to {
		return
	}
	s.conns[connID] = to
	if s.counts[from]--; s.counts[from] <= 0 {
		delete(s.counts, from)
	}
	s.counts[to]++
}

// Leave implements pentecost.Presence.
func (p *Presence) Leave(ctx context.Context, sessionID, connID string) (pentecost.PresenceCounts, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	if s == nil {
		return pentecost.CountsByStream(0, nil), false, nil
	}
	lang, ok := s.conns[connID]
	if ok {
		delete(s.conns, connID)
		if s.counts[lang]--; s.counts[lang] <= 0 {
			delete(s.counts, lang)
		}
	}
	c := s.snapshot()
	p.gc(sessionID, s)
	return c, ok, nil
}

// ChangeLanguage implements pentecost.Presence.
func (p *Presence) ChangeLanguage(ctx context.Context, sessionID, connID, language string) (pentecost.PresenceCounts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	if s == nil {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "Listener is not present.")
	}
	old, ok := s.conns[connID]
	if !ok {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "Listener is not present.")
	}
	s.move(connID, old, pentecost.RenameStream(old, language))
	return s.snapshot(), nil
}

// Counts implements pentecost.Presence.
func (p *Presence) Counts(ctx context.Context, sessionID string) (pentecost.PresenceCounts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.session(sessionID, false).snapshot(), nil
}

// Sessions implements pentecost.Presence.
func (p *Presence) Sessions(ctx context.Context) (map[string]pentecost.PresenceCounts, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]pentecost.PresenceCounts, len(p.sessions))
	for id, s := range p.sessions {
		if len(s.conns) > 0 {
			out[id] = s.snapshot()
		}
	}
	return out, nil
}

// Refresh implements pentecost.Presence. One process has nothing to
// expire, and the node that replaced a connection holds it: it hands it
// over itself, so there is none to report.
func (p *Presence) Refresh(ctx context.Context, sessionID string, entries []pentecost.PresenceEntry) ([]string, error) {
	return nil, nil
}

// RemoveSession implements pentecost.Presence.
func (p *Presence) RemoveSession(ctx context.Context, sessionID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sessions, sessionID)
	return nil
}

// ClaimLanguage implements pentecost.Presence.
func (p *Presence) ClaimLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.claimLocked(sessionID, language, workerID)
	return true, nil
}

func (p *Presence) claimLocked(sessionID, language, workerID string) {
	s := p.session(sessionID, true)
	if s.claims == nil {
		s.claims = make(map[string]map[string]struct{})
	}
	if s.claims[language] == nil {
		s.claims[language] = make(map[string]struct{})
	}
	s.claims[language][workerID] = struct{}{}
}

// ClaimLanguageExclusive implements pentecost.Presence.
func (p *Presence) ClaimLanguageExclusive(ctx context.Context, sessionID, language, workerID, replaces string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.session(sessionID, false); s != nil {
		for id := range s.claims[language] {
			if id != workerID && id != replaces {
				return pentecost.Errorf(pentecost.ECONFLICT, "Another worker already produces this language.")
			}
		}
	}
	p.claimLocked(sessionID, language, workerID)
	return nil
}

// ReleaseLanguage implements pentecost.Presence.
func (p *Presence) ReleaseLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	if s == nil || s.claims[language] == nil {
		return false, nil
	}
	delete(s.claims[language], workerID)
	if len(s.claims[language]) == 0 {
		delete(s.claims, language)
	}
	produced := len(s.claims[language]) > 0
	if len(s.claims) == 0 {
		s.claims = nil
	}
	p.gc(sessionID, s)
	return produced, nil
}

// ProducedLanguages implements pentecost.Presence.
func (p *Presence) ProducedLanguages(ctx context.Context, sessionID string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	if s == nil {
		return nil, nil
	}
	out := make([]string, 0, len(s.claims))
	for l := range s.claims {
		out = append(out, l)
	}
	sort.Strings(out)
	return out, nil
}

// SpeakerJoin implements pentecost.Presence.
func (p *Presence) SpeakerJoin(ctx context.Context, sessionID, connID string) (bool, error) {
	if sessionID == "" || connID == "" {
		return false, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session and connection are required.")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, true)
	if s.speakers == nil {
		s.speakers = make(map[string]struct{})
	}
	others := false
	for id := range s.speakers {
		if id != connID {
			others = true
		}
	}
	s.speakers[connID] = struct{}{}
	return others, nil
}

// SpeakerLeave implements pentecost.Presence.
func (p *Presence) SpeakerLeave(ctx context.Context, sessionID, connID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	if s == nil {
		return nil
	}
	delete(s.speakers, connID)
	p.gc(sessionID, s)
	return nil
}

// SpeakerConnected implements pentecost.Presence.
func (p *Presence) SpeakerConnected(ctx context.Context, sessionID string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.session(sessionID, false)
	return s != nil && len(s.speakers) > 0, nil
}

// OfferLanguages implements pentecost.Presence.
func (p *Presence) OfferLanguages(ctx context.Context, workerID string, offer pentecost.LanguageOffer) error {
	if workerID == "" {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A worker connection is required.")
	}
	cp := make(pentecost.LanguageOffer, len(offer))
	for src, targets := range offer {
		if len(targets) > 0 {
			cp[src] = append([]string(nil), targets...)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(cp) == 0 {
		delete(p.offers, workerID)
	} else {
		p.offers[workerID] = cp
	}
	return nil
}

// OfferedLanguages implements pentecost.Presence.
func (p *Presence) OfferedLanguages(ctx context.Context, source string) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[string]bool{}
	out := []string{}
	for _, offer := range p.offers {
		for _, l := range offer[source] {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// AllOffered implements pentecost.Presence.
func (p *Presence) AllOffered(ctx context.Context) (pentecost.LanguageOffer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := pentecost.LanguageOffer{}
	for _, offer := range p.offers {
		for src, targets := range offer {
			for _, l := range targets {
				if !slices.Contains(out[src], l) {
					out[src] = append(out[src], l)
				}
			}
		}
	}
	for _, targets := range out {
		sort.Strings(targets)
	}
	return out, nil
}

var _ pentecost.Presence = (*Presence)(nil)
