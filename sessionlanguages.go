package pentecost

import (
	"context"
	"sort"
)

// Statuses of a session's language (SessionLanguage.Status).
const (
	// LanguageSource is the language the speaker speaks.
	LanguageSource = "source"
	// LanguageLive is a translation a worker produces now (it claimed it).
	LanguageLive = "live"
	// LanguageAvailable is a translation a connected worker offers for the
	// session's source language: it starts when a listener picks it.
	LanguageAvailable = "available"
)

// SessionLanguage is one language a listener of a session can pick.
type SessionLanguage struct {
	Code   string `json:"code"`
	Status string `json:"status"`
}

// SessionLanguages is what a session offers its listeners: the source
// language first, then live translations, then available ones, each group
// sorted by code. Languages nobody can produce are not listed.
type SessionLanguages struct {
	SessionID      string            `json:"sessionId"`
	SourceLanguage string            `json:"sourceLanguage"`
	Languages      []SessionLanguage `json:"languages"`
}

// SessionLanguageService tells which languages a session offers. The HTTP
// API finds it on its SessionService when that implements it (the
// real-time server's NotifyingSessions does), since the answer comes from
// presence, which the API does not hold itself.
type SessionLanguageService interface {
	// SessionLanguages returns the languages of a live or ended session;
	// id is forgiving like FindSessionByID's.
	// Errors: EINVALIDSESSIONID, ESESSIONNOTFOUND, EUNAVAILABLE.
	SessionLanguages(ctx context.Context, id string) (*SessionLanguages, error)
}

// BuildSessionLanguages orders a session's languages: source, then those
// produced (live), then those offered (available). Codes equal to the
// source, repeated, or empty are left out.
func BuildSessionLanguages(sessionID, source string, produced, offered []string) *SessionLanguages {
	out := &SessionLanguages{SessionID: sessionID, SourceLanguage: source,
		Languages: []SessionLanguage{{Code: source, Status: LanguageSource}}}
	seen := map[string]bool{source: true}
	add := func(codes []string, status string) {
		sorted := append([]string(nil), codes...)
		sort.Strings(sorted)
		for _, c := range sorted {
			if c == "" || seen[c] {
				continue
			}
			seen[c] = true
			out.Languages = append(out.Languages, SessionLanguage{Code: c, Status: status})
		}
	}
	add(produced, LanguageLive)
	add(offered, LanguageAvailable)
	return out
}
