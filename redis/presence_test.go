package redis_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

// twoPresences returns the presences of two nodes sharing one Redis, each
// with its own clock handle on one shared clock.
func twoPresences(t *testing.T, srv *redistest.Server, clock *storetest.Clock) (a, b *redis.Presence) {
	prefix := newPrefix()
	return redis.NewPresence(MustOpenDBPrefix(t, srv, clock, prefix)), redis.NewPresence(MustOpenDBPrefix(t, srv, clock, prefix))
}

func join(tb testing.TB, p *redis.Presence, session, conn, lang string) pentecost.PresenceCounts {
	tb.Helper()
	c, err := p.Join(context.Background(), pentecost.PresenceEntry{SessionID: session, ConnID: conn, Language: lang}, 0, false)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func counts(tb testing.TB, p *redis.Presence, session string) pentecost.PresenceCounts {
	tb.Helper()
	c, err := p.Counts(context.Background(), session)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestPresence_CapAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoPresences(t, srv, storetest.NewClock())
	const perNode, max = 60, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	joined := 0
	for _, p := range []*redis.Presence{a, b} {
		for i := range perNode {
			wg.Go(func() {
				_, err := p.Join(context.Background(), pentecost.PresenceEntry{SessionID: "s", ConnID: fmt.Sprintf("%p-%d", p, i), Language: "en"}, max, false)
				switch pentecost.ErrorCode(err) {
				case "":
					mu.Lock()
					joined++
					mu.Unlock()
				case pentecost.ESESSIONFULL:
				default:
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if joined != max {
		t.Fatalf("%d joined across two nodes, want exactly %d", joined, max)
	}
	if c := counts(t, b, "s"); c.Total != max || c.ByLanguage["en"] != max {
		t.Fatalf("counts = %+v", c)
	}
}

// TestPresence_DeadNodeExpires has node A stop refreshing, as a killed node
// would: its listeners leave the counts once their entries expire, while
// node B's, refreshed, stay.
func TestPresence_DeadNodeExpires(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	a, b := twoPresences(t, srv, clock)
	ctx := context.Background()
	join(t, a, "s", "a1", "en")
	join(t, a, "s", "a2", "es")
	join(t, b, "s", "b1", "es")
	if _, err := a.ClaimLanguage(ctx, "s", "fr", "worker-on-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimLanguage(ctx, "s", "de", "worker-on-b"); err != nil {
		t.Fatal(err)
	}

	// B refreshes on its cadence; A has died.
	for range 2 {
		clock.Add(redis.DefaultRefreshInterval)
		if _, err := b.Refresh(ctx, "s", []pentecost.PresenceEntry{{SessionID: "s", ConnID: "b1", Language: "es"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ClaimLanguage(ctx, "s", "de", "worker-on-b"); err != nil {
			t.Fatal(err)
		}
	}
	// 30 s after A's last word its entries are gone; just before, not.
	clock.Add(redis.DefaultEntryTTL - 2*redis.DefaultRefreshInterval - time.Millisecond)
	if c := counts(t, b, "s"); c.Total != 3 {
		t.Fatalf("counts just before expiry = %+v, want 3", c)
	}
	clock.Add(time.Millisecond)
	c := counts(t, b, "s")
	if c.Total != 1 || c.ByLanguage["es"] != 1 || len(c.ByLanguage) != 1 {
		t.Fatalf("counts after A's entries expired = %+v, want b1 alone", c)
	}
	if langs, _ := b.ProducedLanguages(ctx, "s"); len(langs) != 1 || langs[0] != "de" {
		t.Fatalf("produced = %v, want de only", langs)
	}
	// A's connections are gone for good: leaving them changes nothing.
	if c, left, err := b.Leave(ctx, "s", "a1"); err != nil || left || c.Total != 1 {
		t.Fatalf("leave of an expired entry = %+v, %v, %v", c, left, err)
	}
	// A was cut off, not dead: its late refresh puts its listeners back.
	if _, err := a.Refresh(ctx, "s", []pentecost.PresenceEntry{{SessionID: "s", ConnID: "a1", Language: "en"}, {SessionID: "s", ConnID: "a2", Language: "es"}}); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, a, "s"); c.Total != 3 || c.ByLanguage["en"] != 1 || c.ByLanguage["es"] != 2 {
		t.Fatalf("counts = %+v after A refreshed its live listeners", c)
	}

	// Once B's listener is gone too, the session leaves Sessions.
	clock.Add(redis.DefaultEntryTTL)
	all, err := a.Sessions(ctx)
	if err != nil || len(all) != 0 {
		t.Fatalf("Sessions = %v, %v; want none", all, err)
	}
}

// TestPresence_RefreshRecovers loses every entry (Redis restarted
// empty): a node that refreshes with its entries puts its listeners back,
// past the cap, with their languages.
func TestPresence_RefreshRecovers(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	db := MustOpenDB(t, srv, clock)
	p := redis.NewPresence(db)
	ctx := context.Background()
	entries := []pentecost.PresenceEntry{{SessionID: "s", ConnID: "c1", Language: "en"}, {SessionID: "s", ConnID: "c2", Language: "es"}}
	for _, e := range entries {
		join(t, p, e.SessionID, e.ConnID, e.Language)
	}
	srv.Restart()
	waitReachable(t, db)
	if c := counts(t, p, "s"); c.Total != 0 {
		t.Fatalf("counts after the restart = %+v", c)
	}
	if _, err := p.Refresh(ctx, "s", entries); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refresh(ctx, "s", entries); err != nil { // twice changes nothing
		t.Fatal(err)
	}
	c := counts(t, p, "s")
	if c.Total != 2 || c.ByLanguage["en"] != 1 || c.ByLanguage["es"] != 1 {
		t.Fatalf("counts = %+v, want both back", c)
	}
	if all, _ := p.Sessions(ctx); all["s"].Total != 2 {
		t.Fatalf("Sessions = %v", all)
	}
}

// TestPresence_ReplacedAcrossNodes: a refresh lands on node B and replaces
// a listener node A still holds (until A closes it). A's refreshes keep
// naming it meanwhile, for longer than the entry TTL, and must neither
// count it again nor make it replaceable again; each reports it replaced,
// so that A closes it, and reports none of the live connections. Once A's
// connection leaves, its mark goes with it.
func TestPresence_ReplacedAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	prefix := newPrefix()
	dbA := MustOpenDBPrefix(t, srv, clock, prefix)
	a, b := redis.NewPresence(dbA), redis.NewPresence(MustOpenDBPrefix(t, srv, clock, prefix))
	ctx := context.Background()
	onA := pentecost.PresenceEntry{SessionID: "s", ConnID: "a1", Language: "en"}
	onB := pentecost.PresenceEntry{SessionID: "s", ConnID: "b1", Language: "en"}
	alsoOnA := pentecost.PresenceEntry{SessionID: "s", ConnID: "a2", Language: "es"}
	join(t, a, "s", "a1", "en")
	join(t, a, "s", "a2", "es")
	if replaced, err := a.Refresh(ctx, "s", []pentecost.PresenceEntry{onA, alsoOnA}); err != nil || len(replaced) != 0 {
		t.Fatalf("refresh before the replace = %v, %v; want none replaced", replaced, err)
	}
	if _, err := b.Replace(ctx, "a1", onB); err != nil {
		t.Fatal(err)
	}
	for range 4 { // 40 s: past the 30 s TTL of the replaced mark
		clock.Add(redis.DefaultRefreshInterval)
		replaced, err := a.Refresh(ctx, "s", []pentecost.PresenceEntry{onA, alsoOnA})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(replaced, []string{"a1"}) {
			t.Fatalf("A's refresh reported %v replaced, want [a1]", replaced)
		}
		if replaced, err := b.Refresh(ctx, "s", []pentecost.PresenceEntry{onB}); err != nil || len(replaced) != 0 {
			t.Fatalf("B's refresh = %v, %v; want none replaced", replaced, err)
		}
		if c := counts(t, a, "s"); c.Total != 2 {
			t.Fatalf("counts = %+v, want a2 and b1", c)
		}
	}
	if _, err := b.Replace(ctx, "a1", pentecost.PresenceEntry{SessionID: "s", ConnID: "b2", Language: "en"}); pentecost.ErrorCode(err) != pentecost.ENOTFOUND {
		t.Fatalf("second replace of a1 = %v, want NOT_FOUND", err)
	}
	if _, left, err := a.Leave(ctx, "s", "a1"); err != nil || left {
		t.Fatalf("leave of the replaced connection = %v, %v", left, err)
	}
	if n := dbA.Client().ZCard(ctx, prefix+"presence:{s}:replaced").Val(); n != 0 {
		t.Fatalf("%d replaced marks left after the connection left", n)
	}
	if replaced, err := a.Refresh(ctx, "s", []pentecost.PresenceEntry{alsoOnA}); err != nil || len(replaced) != 0 {
		t.Fatalf("refresh after a1 left = %v, %v; want none replaced", replaced, err)
	}
}

func TestRateLimiter_AcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	prefix := newPrefix()
	a := redis.NewRateLimiter(MustOpenDBPrefix(t, srv, clock, prefix))
	b := redis.NewRateLimiter(MustOpenDBPrefix(t, srv, clock, prefix))
	limit := pentecost.Limit{Events: 4, Per: time.Minute}
	for i := range limit.Events {
		node := a
		if i%2 == 1 {
			node = b
		}
		if err := node.Allow(context.Background(), "ip", limit); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []*redis.RateLimiter{a, b} {
		err := node.Allow(context.Background(), "ip", limit)
		if pentecost.ErrorCode(err) != pentecost.ERATELIMIT || pentecost.ErrorRetryAfter(err) != time.Minute {
			t.Fatalf("err = %v, want the shared quota used up", err)
		}
	}
}

// TestPresence_KeysKeepExpiry changes the language of a session's only
// listener, which empties the counts hash (Redis deletes it) before
// counting the new language: the recreated hash must expire like the
// session's other presence keys, or it would stay forever.
func TestPresence_KeysKeepExpiry(t *testing.T) {
	srv := redistest.Start(t)
	db := MustOpenDB(t, srv, nil)
	p := redis.NewPresence(db)
	ctx := context.Background()
	join(t, p, "s1", "c1", "en")
	c, err := p.ChangeLanguage(ctx, "s1", "c1", "es")
	if err != nil {
		t.Fatal(err)
	}
	if c.Total != 1 || c.ByLanguage["es"] != 1 || len(c.ByLanguage) != 1 {
		t.Fatalf("counts = %+v, want one listener of es", c)
	}
	for _, k := range []string{"conns", "langs", "counts"} {
		key := db.Prefix + "presence:{s1}:" + k
		if ttl := db.Client().PTTL(ctx, key).Val(); ttl <= 0 {
			t.Errorf("%s: PTTL %v, want an expiry", key, ttl)
		}
	}
}

// TestPresence_OffersAndSpeakersAcrossNodes: a worker's offer and a
// speaker's entry made on one node are seen on another, and a dead node's
// expire after DefaultEntryTTL unless renewed, like listener entries.
func TestPresence_OffersAndSpeakersAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	a, b := twoPresences(t, srv, clock)
	ctx := context.Background()
	if err := a.OfferLanguages(ctx, "worker-on-a", pentecost.LanguageOffer{"en": {"es", "ca"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.OfferLanguages(ctx, "worker-on-b", pentecost.LanguageOffer{"en": {"gl"}}); err != nil {
		t.Fatal(err)
	}
	if others, err := a.SpeakerJoin(ctx, "s", "speaker-on-a"); err != nil || others {
		t.Fatalf("speaker join = %v, %v", others, err)
	}
	if langs, err := b.OfferedLanguages(ctx, "en"); err != nil || !reflect.DeepEqual(langs, []string{"ca", "es", "gl"}) {
		t.Fatalf("offered on b = %v, %v", langs, err)
	}
	if ok, err := b.SpeakerConnected(ctx, "s"); err != nil || !ok {
		t.Fatalf("speaker seen on b = %v, %v", ok, err)
	}
	// A speaker connecting on b while a's is live is no arrival.
	if others, err := b.SpeakerJoin(ctx, "s", "speaker-on-b"); err != nil || !others {
		t.Fatalf("second speaker = %v, %v", others, err)
	}
	_ = b.SpeakerLeave(ctx, "s", "speaker-on-b")

	// B renews its worker's offer; A has died.
	for range 2 {
		clock.Add(redis.DefaultRefreshInterval)
		if err := b.OfferLanguages(ctx, "worker-on-b", pentecost.LanguageOffer{"en": {"gl"}}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(redis.DefaultEntryTTL - 2*redis.DefaultRefreshInterval - time.Millisecond)
	if langs, _ := b.OfferedLanguages(ctx, "en"); len(langs) != 3 {
		t.Fatalf("offered just before expiry = %v", langs)
	}
	if ok, _ := b.SpeakerConnected(ctx, "s"); !ok {
		t.Fatal("speaker gone before expiry")
	}
	clock.Add(time.Millisecond)
	if langs, _ := b.OfferedLanguages(ctx, "en"); !reflect.DeepEqual(langs, []string{"gl"}) {
		t.Fatalf("offered after a's expired = %v, want gl", langs)
	}
	if ok, _ := b.SpeakerConnected(ctx, "s"); ok {
		t.Fatal("dead node's speaker still connected")
	}
	// A comes back: renewing brings its entries back, and its speaker is
	// then the only one (others == false).
	if others, err := a.SpeakerJoin(ctx, "s", "speaker-on-a"); err != nil || others {
		t.Fatalf("renewed speaker = %v, %v", others, err)
	}
}
