package pentecost

import (
	"context"
	"sort"
	"strings"
)

// PresenceEntry is one live listener connection.
type PresenceEntry struct {
	SessionID string
	// ConnID is unique per connection (across nodes).
	ConnID   string
	Language string
	// Codec is the stream the listener takes: CodecPCM or CodecOpus.
	Codec string
}

// StreamName is the name of the stream the listener takes (StreamKey.Name):
// how a presence keeps its language and codec in one value.
func (e PresenceEntry) StreamName() string {
	return StreamKey{Language: e.Language, Codec: e.Codec}.Name()
}

// PresenceCounts is how many listeners a session has, in total and by
// language. Counts are never negative.
type PresenceCounts struct {
	Total      int
	ByLanguage map[string]int
	// PCMByLanguage counts, of ByLanguage, the listeners who take PCM (the
	// original system's clients among them): a worker publishes PCM of a
	// language only while it has some.
	PCMByLanguage map[string]int
}

// CountsByStream builds counts from listeners by the stream they take (by
// StreamKey.Name), as presences keep them.
func CountsByStream(total int, byStream map[string]int) PresenceCounts {
	c := PresenceCounts{Total: total, ByLanguage: make(map[string]int, len(byStream)), PCMByLanguage: make(map[string]int, len(byStream))}
	for name, n := range byStream {
		if n <= 0 {
			continue
		}
		lang, codec := ParseStreamName(name)
		c.ByLanguage[lang] += n
		if codec == CodecPCM {
			c.PCMByLanguage[lang] += n
		}
	}
	return c
}

// ParseStreamName splits a stream's name (StreamKey.Name) into its
// language and codec. Language codes never hold a dot.
func ParseStreamName(name string) (language, codec string) {
	if l, c, ok := strings.Cut(name, "."); ok {
		return l, c
	}
	return name, CodecPCM
}

// RenameStream is the name of the stream in language that takes the codec
// of the stream named name: a listener who changes language keeps its codec.
func RenameStream(name, language string) string {
	_, codec := ParseStreamName(name)
	return StreamKey{Language: language, Codec: codec}.Name()
}

// Presence knows who listens to what. It is the single source of truth for
// listener counts and the listener cap. The in-memory implementation serves
// one node; a shared one (e.g. Redis) holds every node's listeners, expires
// the entries of a node that stops calling Refresh, and keeps the cap atomic
// across nodes.
type Presence interface {
	// Join adds a listener unless the session already has max or more
	// (max <= 0 means no cap). With refresh == true it adds the listener
	// even past the cap, as Refresh puts lost entries back; the real-time
	// server never joins that way for a client (a client's refresh goes
	// through Replace, which cannot pass the cap). Joining with a ConnID
	// already present only updates its language.
	// Errors: ESESSIONFULL, EUNAVAILABLE.
	Join(ctx context.Context, e PresenceEntry, max int, refresh bool) (PresenceCounts, error)

	// Replace hands a listener's place to its new connection (a refresh):
	// it removes oldConnID from e's session and adds e in one atomic step
	// (across nodes, for a shared presence), so the total does not change
	// and the cap cannot be passed. When oldConnID is not present (it left,
	// or a refresh replaced it already) it changes nothing and fails: a
	// connection is replaced at most once. A replaced connection stays
	// replaced: Refresh does not put it back while its node, which holds
	// it until it closes, keeps naming it, and reports it to that node.
	// Errors: ENOTFOUND (oldConnID not present), EVALIDATIONFIELD, EUNAVAILABLE.
	Replace(ctx context.Context, oldConnID string, e PresenceEntry) (PresenceCounts, error)

	// Leave removes a listener. It is idempotent: leaving twice, or leaving
	// an unknown connection, changes nothing and reports left == false.
	// Errors: EUNAVAILABLE.
	Leave(ctx context.Context, sessionID, connID string) (counts PresenceCounts, left bool, err error)

	// ChangeLanguage moves a present listener to another language.
	// Errors: ENOTFOUND (not present), EUNAVAILABLE.
	ChangeLanguage(ctx context.Context, sessionID, connID, language string) (PresenceCounts, error)

	// Counts returns a session's counts (zero for an unknown session).
	// Errors: EUNAVAILABLE.
	Counts(ctx context.Context, sessionID string) (PresenceCounts, error)

	// Sessions returns the counts of every session with at least one
	// listener, by session ID, for workers that choose what to translate.
	// Errors: EUNAVAILABLE.
	Sessions(ctx context.Context) (map[string]PresenceCounts, error)

	// Refresh tells a shared presence that these listeners of a session are
	// still connected: their entries live on (with the language given), and
	// entries it lost (its store restarted empty, or this node was cut off
	// for longer than the expiry) are put back, past the cap, as refresh
	// joins would be; an entry Replace took the place of is not. Entries
	// not refreshed for the expiry disappear (a crashed node).
	//
	// It returns the connections among entries that Replace took the place
	// of, whichever node replaced them: a refresh that landed on another
	// node leaves the old connection open on this one, uncounted, and this
	// node must close it. Those it names are replaced even when it also
	// returns an error. The in-memory presence (one node) has nothing to
	// expire and returns none: its node replaced them itself.
	// Errors: EUNAVAILABLE.
	Refresh(ctx context.Context, sessionID string, entries []PresenceEntry) (replaced []string, err error)

	// RemoveSession forgets every listener of a session (it ended).
	// Errors: EUNAVAILABLE.
	RemoveSession(ctx context.Context, sessionID string) error

	// ClaimLanguage records that a worker produces a session's language;
	// ReleaseLanguage undoes it (idempotent). Both report whether any worker
	// produces the language afterwards.
	// Errors: EUNAVAILABLE.
	ClaimLanguage(ctx context.Context, sessionID, language, workerID string) (produced bool, err error)
	ReleaseLanguage(ctx context.Context, sessionID, language, workerID string) (produced bool, err error)

	// ClaimLanguageExclusive claims a language like ClaimLanguage, unless a
	// worker other than workerID and replaces already produces it; then it
	// changes nothing. replaces names an earlier connection of the same
	// worker whose claim may still be present ("" for none). The check and
	// the claim are one atomic step (across nodes, for a shared presence).
	// Errors: ECONFLICT (another worker produces the language), EUNAVAILABLE.
	ClaimLanguageExclusive(ctx context.Context, sessionID, language, workerID, replaces string) error

	// ProducedLanguages returns the languages some worker produces for a session.
	// Errors: EUNAVAILABLE.
	ProducedLanguages(ctx context.Context, sessionID string) ([]string, error)

	// SpeakerJoin records that connID is a live speaker connection of a
	// session and reports whether another speaker connection of it was
	// live already (a refresh or a replacement, not a speaker arriving).
	// Calling it again for the same connection renews its entry, which
	// expires like a listener entry: the speaker's node renews it at every
	// refresh, so a dead node's speaker stops counting within the expiry.
	// Errors: EUNAVAILABLE.
	SpeakerJoin(ctx context.Context, sessionID, connID string) (others bool, err error)

	// SpeakerLeave removes a speaker connection (idempotent).
	// Errors: EUNAVAILABLE.
	SpeakerLeave(ctx context.Context, sessionID, connID string) error

	// SpeakerConnected reports whether a speaker connection of the session
	// is live (on any node, for a shared presence).
	// Errors: EUNAVAILABLE.
	SpeakerConnected(ctx context.Context, sessionID string) (bool, error)

	// OfferLanguages records what a worker connection can produce: target
	// languages by source language. It replaces the connection's previous
	// offer; an empty offer withdraws it. An offer expires like a listener
	// entry: the worker's node offers again at every refresh.
	// Errors: EUNAVAILABLE.
	OfferLanguages(ctx context.Context, workerID string, offer LanguageOffer) error

	// OfferedLanguages returns, sorted and without duplicates, the target
	// languages some worker connection offers for speech in source.
	// Errors: EUNAVAILABLE.
	OfferedLanguages(ctx context.Context, source string) ([]string, error)

	// AllOffered returns the union of every live worker connection's offer:
	// target languages by source, each list sorted and without duplicates,
	// including the quality tiers under OfferTiersKey. Empty, never nil,
	// when no worker offers anything.
	// Errors: EUNAVAILABLE.
	AllOffered(ctx context.Context) (LanguageOffer, error)
}

// LanguageOffer is what a translation worker can produce: target language
// codes by source language code, e.g. {"en": ["es", "ca", "gl"]}.
//
// An offer may also name the quality tiers the worker serves, under the
// key OfferTiersKey (not a language code), e.g. {"tiers": ["premium",
// "standard"]}; an offer without it serves the standard tier only.
type LanguageOffer map[string][]string

// OfferTiersKey is the key of a LanguageOffer that lists quality tiers
// rather than target languages. It cannot be a language code (those have
// two letters).
const OfferTiersKey = "tiers"

// Capabilities is what the connected workers, on every node, can do
// together: the quality tiers they serve and the target languages they
// offer by source language. GET /capabilities answers with it.
type Capabilities struct {
	Tiers     []string            `json:"tiers"`
	Languages map[string][]string `json:"languages"`
}

// CapabilityService tells what the connected workers can do. The HTTP API
// finds it on its SessionService when that implements it (the real-time
// server's NotifyingSessions does); without one it answers with the
// standard tier and no languages.
type CapabilityService interface {
	// Capabilities returns the union of the connected workers' offers.
	// Errors: EUNAVAILABLE.
	Capabilities(ctx context.Context) (*Capabilities, error)
}

// CapabilitiesOf turns the union of offers (Presence.AllOffered) into
// Capabilities: the standard tier is always served (a worker that names no
// tier serves it, and a session of the standard tier is never refused).
func CapabilitiesOf(all LanguageOffer) *Capabilities {
	c := &Capabilities{Tiers: []string{string(QualityStandard)}, Languages: map[string][]string{}}
	for k, v := range all {
		if k == OfferTiersKey {
			for _, t := range v {
				if QualityTier(t).Valid() && t != string(QualityStandard) {
					c.Tiers = append(c.Tiers, t)
				}
			}
			continue
		}
		if len(v) > 0 {
			c.Languages[k] = append([]string(nil), v...)
		}
	}
	sort.Strings(c.Tiers[1:])
	return c
}
