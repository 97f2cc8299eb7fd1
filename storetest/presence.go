package storetest

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/pentecost/pentecost"
)

// PresenceFactory returns a fresh, empty Presence.
type PresenceFactory func(t *testing.T) pentecost.Presence

func entry(session, conn, lang string) pentecost.PresenceEntry {
	return pentecost.PresenceEntry{SessionID: session, ConnID: conn, Language: lang}
}

// wantCounts fails unless c has total and exactly the languages in by.
func wantCounts(tb testing.TB, c pentecost.PresenceCounts, total int, by map[string]int) {
	tb.Helper()
	got := c.ByLanguage
	if got == nil {
		got = map[string]int{}
	}
	if by == nil {
		by = map[string]int{}
	}
	if c.Total != total || !reflect.DeepEqual(got, by) {
		tb.Fatalf("counts = %d %v, want %d %v", c.Total, got, total, by)
	}
}

// wantPCM fails unless c's PCM listeners are exactly by.
func wantPCM(tb testing.TB, c pentecost.PresenceCounts, by map[string]int) {
	tb.Helper()
	got := c.PCMByLanguage
	if len(got) == 0 && len(by) == 0 {
		return
	}
	if !reflect.DeepEqual(got, by) {
		tb.Fatalf("PCM listeners = %v, want %v", got, by)
	}
}

func mustJoin(tb testing.TB, p pentecost.Presence, e pentecost.PresenceEntry, max int) pentecost.PresenceCounts {
	tb.Helper()
	c, err := p.Join(context.Background(), e, max, false)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// RunPresenceTests runs the Presence suite against fresh presences from newPresence.
func RunPresenceTests(t *testing.T, newPresence PresenceFactory) {
	ctx := context.Background()

	t.Run("Join", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			wantCounts(t, mustJoin(t, p, entry("s", "a", "en"), 2), 1, map[string]int{"en": 1})
			wantCounts(t, mustJoin(t, p, entry("s", "b", "es"), 2), 2, map[string]int{"en": 1, "es": 1})
			c, err := p.Counts(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, c, 2, map[string]int{"en": 1, "es": 1})
		})
		t.Run("SameConnUpdatesLanguage", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 1)
			// The cap does not apply: the connection is already counted.
			wantCounts(t, mustJoin(t, p, entry("s", "a", "es"), 1), 1, map[string]int{"es": 1})
		})
		t.Run("NoCap", func(t *testing.T) {
			p := newPresence(t)
			for i := range 20 {
				mustJoin(t, p, entry("s", fmt.Sprint(i), "en"), 0)
			}
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 20, map[string]int{"en": 20})
		})
		t.Run("ErrSessionFull", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 2)
			mustJoin(t, p, entry("s", "b", "en"), 2)
			_, err := p.Join(ctx, entry("s", "c", "en"), 2, false)
			wantCode(t, err, pentecost.ESESSIONFULL)
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 2, map[string]int{"en": 2})
			// A refresh may exceed the cap.
			c, err = p.Join(ctx, entry("s", "c", "fr"), 2, true)
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, c, 3, map[string]int{"en": 2, "fr": 1})
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			p := newPresence(t)
			for _, e := range []pentecost.PresenceEntry{entry("", "a", "en"), entry("s", "", "en")} {
				_, err := p.Join(ctx, e, 0, false)
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
			}
		})
	})

	t.Run("Leave", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			mustJoin(t, p, entry("s", "b", "es"), 0)
			c, left, err := p.Leave(ctx, "s", "a")
			if err != nil || !left {
				t.Fatalf("leave = %v, %v", left, err)
			}
			wantCounts(t, c, 1, map[string]int{"es": 1})
		})
		t.Run("Idempotent", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			if _, left, _ := p.Leave(ctx, "s", "a"); !left {
				t.Fatal("first leave not reported")
			}
			c, left, err := p.Leave(ctx, "s", "a")
			if err != nil || left {
				t.Fatalf("second leave = %v, %v", left, err)
			}
			wantCounts(t, c, 0, nil)
		})
		t.Run("Unknown", func(t *testing.T) {
			p := newPresence(t)
			c, left, err := p.Leave(ctx, "nobody", "x")
			if err != nil || left {
				t.Fatalf("leave = %v, %v", left, err)
			}
			wantCounts(t, c, 0, nil)
		})
		t.Run("FreesCapacity", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 1)
			_, _, _ = p.Leave(ctx, "s", "a")
			mustJoin(t, p, entry("s", "b", "en"), 1)
		})
	})

	t.Run("ChangeLanguage", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			mustJoin(t, p, entry("s", "b", "en"), 0)
			c, err := p.ChangeLanguage(ctx, "s", "a", "es")
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, c, 2, map[string]int{"en": 1, "es": 1})
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			p := newPresence(t)
			_, err := p.ChangeLanguage(ctx, "s", "x", "en")
			wantCode(t, err, pentecost.ENOTFOUND)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			_, _, _ = p.Leave(ctx, "s", "a")
			_, err = p.ChangeLanguage(ctx, "s", "a", "es")
			wantCode(t, err, pentecost.ENOTFOUND)
		})
	})

	t.Run("Codecs", func(t *testing.T) {
		// Listeners who take Opus count in their language, and out of its
		// PCM listeners, whichever way they arrived or moved.
		p := newPresence(t)
		opus := func(conn, lang string) pentecost.PresenceEntry {
			e := entry("s", conn, lang)
			e.Codec = pentecost.CodecOpus
			return e
		}
		mustJoin(t, p, entry("s", "a", "es"), 0)
		mustJoin(t, p, opus("b", "es"), 0)
		c := mustJoin(t, p, opus("c", "fr"), 0)
		wantCounts(t, c, 3, map[string]int{"es": 2, "fr": 1})
		wantPCM(t, c, map[string]int{"es": 1})
		c, err := p.ChangeLanguage(ctx, "s", "c", "es") // keeps its codec
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, c, 3, map[string]int{"es": 3})
		wantPCM(t, c, map[string]int{"es": 1})
		if c, err = p.Replace(ctx, "a", opus("d", "es")); err != nil {
			t.Fatal(err)
		}
		wantPCM(t, c, nil)
		if _, err := p.Refresh(ctx, "s", []pentecost.PresenceEntry{opus("b", "es"), opus("c", "es"), entry("s", "e", "fr")}); err != nil {
			t.Fatal(err)
		}
		all, err := p.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A shared presence puts back e, which it never had; one node's
		// presence has nothing to put back.
		if n := all["s"].PCMByLanguage["fr"]; all["s"].Total == 4 && n != 1 || all["s"].Total == 3 && n != 0 {
			t.Fatalf("after refresh: %+v", all["s"])
		}
		want := map[string]int{"es": 3}
		if all["s"].Total == 4 {
			want["fr"] = 1
		}
		wantCounts(t, all["s"], all["s"].Total, want)
	})

	t.Run("Counts", func(t *testing.T) {
		p := newPresence(t)
		c, err := p.Counts(ctx, "unknown")
		if err != nil {
			t.Fatal(err)
		}
		wantCounts(t, c, 0, nil)
	})

	t.Run("Sessions", func(t *testing.T) {
		p := newPresence(t)
		if all, err := p.Sessions(ctx); err != nil || len(all) != 0 {
			t.Fatalf("Sessions = %v, %v; want none", all, err)
		}
		mustJoin(t, p, entry("s1", "a", "en"), 0)
		mustJoin(t, p, entry("s1", "b", "es"), 0)
		mustJoin(t, p, entry("s2", "c", "fr"), 0)
		mustJoin(t, p, entry("s3", "d", "fr"), 0)
		_, _, _ = p.Leave(ctx, "s3", "d")
		_, _ = p.ClaimLanguage(ctx, "s4", "de", "w1") // a claim is not a listener
		all, err := p.Sessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 {
			t.Fatalf("Sessions = %v, want s1 and s2", all)
		}
		wantCounts(t, all["s1"], 2, map[string]int{"en": 1, "es": 1})
		wantCounts(t, all["s2"], 1, map[string]int{"fr": 1})
	})

	t.Run("Refresh", func(t *testing.T) {
		p := newPresence(t)
		mustJoin(t, p, entry("s", "a", "en"), 0)
		// Nothing was replaced: a connection reported replaced would be
		// closed by its node.
		if replaced, err := p.Refresh(ctx, "s", []pentecost.PresenceEntry{entry("s", "a", "en")}); err != nil || len(replaced) != 0 {
			t.Fatalf("refresh = %v, %v; want none replaced", replaced, err)
		}
		if replaced, err := p.Refresh(ctx, "other", nil); err != nil || len(replaced) != 0 {
			t.Fatalf("refresh of nothing = %v, %v", replaced, err)
		}
		c, _ := p.Counts(ctx, "s")
		wantCounts(t, c, 1, map[string]int{"en": 1}) // a refresh never counts a listener twice
	})

	t.Run("Replace", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 2)
			mustJoin(t, p, entry("s", "b", "en"), 2)
			// At the cap: the new connection takes a's place, in its own language.
			c, err := p.Replace(ctx, "a", entry("s", "c", "es"))
			if err != nil {
				t.Fatal(err)
			}
			wantCounts(t, c, 2, map[string]int{"en": 1, "es": 1})
			// The old connection is gone: its leave changes nothing, and
			// the session is still full.
			if c, left, err := p.Leave(ctx, "s", "a"); err != nil || left {
				t.Fatalf("leave of the replaced connection = %v, %v", left, err)
			} else {
				wantCounts(t, c, 2, map[string]int{"en": 1, "es": 1})
			}
			_, err = p.Join(ctx, entry("s", "d", "en"), 2, false)
			wantCode(t, err, pentecost.ESESSIONFULL)
		})
		t.Run("ErrNotFoundOnceReplaced", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 1)
			if _, err := p.Replace(ctx, "a", entry("s", "b", "en")); err != nil {
				t.Fatal(err)
			}
			// A second refresh naming a (a replayed ticket) gets nothing.
			_, err := p.Replace(ctx, "a", entry("s", "c", "en"))
			wantCode(t, err, pentecost.ENOTFOUND)
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 1, map[string]int{"en": 1})
		})
		t.Run("ErrNotFound", func(t *testing.T) {
			p := newPresence(t)
			_, err := p.Replace(ctx, "x", entry("s", "b", "en"))
			wantCode(t, err, pentecost.ENOTFOUND)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			_, _, _ = p.Leave(ctx, "s", "a")
			_, err = p.Replace(ctx, "a", entry("s", "b", "en"))
			wantCode(t, err, pentecost.ENOTFOUND)
			// Another session's connection is not this session's.
			mustJoin(t, p, entry("t", "z", "en"), 0)
			_, err = p.Replace(ctx, "z", entry("s", "b", "en"))
			wantCode(t, err, pentecost.ENOTFOUND)
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 0, nil)
		})
		t.Run("RefreshDoesNotBringItBack", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 1)
			if _, err := p.Replace(ctx, "a", entry("s", "b", "en")); err != nil {
				t.Fatal(err)
			}
			// The old connection's node still holds it until it closes,
			// and names it in its refreshes meanwhile. A shared presence
			// reports it, at every refresh, so that its node closes it
			// (however the refresh reached Replace); the in-memory one,
			// whose node replaced it itself, may report nothing. b, which
			// is live, is never reported.
			for range 2 {
				replaced, err := p.Refresh(ctx, "s", []pentecost.PresenceEntry{entry("s", "a", "en"), entry("s", "b", "en")})
				if err != nil {
					t.Fatal(err)
				}
				if len(replaced) != 0 && !reflect.DeepEqual(replaced, []string{"a"}) {
					t.Fatalf("refresh reported %v replaced, want a or nothing", replaced)
				}
			}
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 1, map[string]int{"en": 1})
			_, err := p.Replace(ctx, "a", entry("s", "c", "en"))
			wantCode(t, err, pentecost.ENOTFOUND)
		})
		t.Run("ConcurrentOneWins", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 1)
			const refreshes = 20
			errs := make([]error, refreshes)
			var wg sync.WaitGroup
			for i := range refreshes {
				wg.Go(func() { _, errs[i] = p.Replace(ctx, "a", entry("s", fmt.Sprint("r", i), "en")) })
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch pentecost.ErrorCode(err) {
				case "":
					won++
				case pentecost.ENOTFOUND:
				default:
					t.Fatalf("replace: %v", err)
				}
			}
			if won != 1 {
				t.Fatalf("%d refreshes replaced the connection, want exactly 1", won)
			}
			c, _ := p.Counts(ctx, "s")
			wantCounts(t, c, 1, map[string]int{"en": 1})
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			p := newPresence(t)
			mustJoin(t, p, entry("s", "a", "en"), 0)
			for _, tt := range []struct {
				old string
				e   pentecost.PresenceEntry
			}{{"", entry("s", "b", "en")}, {"a", entry("", "b", "en")}, {"a", entry("s", "", "en")}, {"a", entry("s", "a", "en")}} {
				_, err := p.Replace(ctx, tt.old, tt.e)
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
			}
		})
	})

	t.Run("RemoveSession", func(t *testing.T) {
		p := newPresence(t)
		mustJoin(t, p, entry("s", "a", "en"), 0)
		mustJoin(t, p, entry("t", "b", "en"), 0)
		_, _ = p.ClaimLanguage(ctx, "s", "es", "w1")
		if err := p.RemoveSession(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		c, _ := p.Counts(ctx, "s")
		wantCounts(t, c, 0, nil)
		if langs, err := p.ProducedLanguages(ctx, "s"); err != nil || len(langs) != 0 {
			t.Fatalf("ProducedLanguages = %v, %v; want none", langs, err)
		}
		all, _ := p.Sessions(ctx)
		if _, ok := all["s"]; ok || len(all) != 1 {
			t.Fatalf("Sessions = %v, want t only", all)
		}
		if err := p.RemoveSession(ctx, "never"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ConcurrentCapIsAtomic", func(t *testing.T) {
		p := newPresence(t)
		const joiners, max = 100, 50
		errs := make([]error, joiners)
		var wg sync.WaitGroup
		for i := range joiners {
			wg.Go(func() { _, errs[i] = p.Join(ctx, entry("s", fmt.Sprint(i), "en"), max, false) })
		}
		wg.Wait()
		joined := 0
		for _, err := range errs {
			switch pentecost.ErrorCode(err) {
			case "":
				joined++
			case pentecost.ESESSIONFULL:
			default:
				t.Fatalf("join: %v", err)
			}
		}
		if joined != max {
			t.Fatalf("%d joined, want exactly %d", joined, max)
		}
		c, _ := p.Counts(ctx, "s")
		wantCounts(t, c, max, map[string]int{"en": max})
	})

	t.Run("ConcurrentJoinLeaveExact", func(t *testing.T) {
		p := newPresence(t)
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				id := fmt.Sprint(i)
				_, _ = p.Join(ctx, entry("s", id, "en"), 0, false)
				if i%2 == 0 {
					_, _, _ = p.Leave(ctx, "s", id)
					_, _, _ = p.Leave(ctx, "s", id)
				}
			})
		}
		wg.Wait()
		c, _ := p.Counts(ctx, "s")
		wantCounts(t, c, 50, map[string]int{"en": 50})
	})

	t.Run("Claims", func(t *testing.T) {
		p := newPresence(t)
		for _, w := range []string{"w1", "w2"} {
			if produced, err := p.ClaimLanguage(ctx, "s", "es", w); err != nil || !produced {
				t.Fatalf("claim = %v, %v", produced, err)
			}
		}
		_, _ = p.ClaimLanguage(ctx, "s", "de", "w1")
		if langs, err := p.ProducedLanguages(ctx, "s"); err != nil || !reflect.DeepEqual(langs, []string{"de", "es"}) {
			t.Fatalf("produced = %v, %v", langs, err)
		}
		if produced, _ := p.ReleaseLanguage(ctx, "s", "es", "w1"); !produced {
			t.Fatal("es released while w2 still produces it")
		}
		if produced, _ := p.ReleaseLanguage(ctx, "s", "es", "w2"); produced {
			t.Fatal("es still produced")
		}
		if produced, err := p.ReleaseLanguage(ctx, "s", "es", "w2"); err != nil || produced {
			t.Fatalf("second release = %v, %v", produced, err)
		}
		if langs, _ := p.ProducedLanguages(ctx, "s"); !reflect.DeepEqual(langs, []string{"de"}) {
			t.Fatalf("produced = %v", langs)
		}
		if langs, err := p.ProducedLanguages(ctx, "unknown"); err != nil || len(langs) != 0 {
			t.Fatalf("produced = %v, %v", langs, err)
		}
	})

	t.Run("ClaimExclusive", func(t *testing.T) {
		p := newPresence(t)
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w1", ""); err != nil {
			t.Fatal(err)
		}
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w1", ""); err != nil {
			t.Fatalf("claiming again: %v", err) // a worker's own claim is no conflict
		}
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w2", ""); pentecost.ErrorCode(err) != pentecost.ECONFLICT {
			t.Fatalf("second worker: %v, want %s", err, pentecost.ECONFLICT)
		}
		if err := p.ClaimLanguageExclusive(ctx, "s", "fr", "w2", ""); err != nil {
			t.Fatalf("other language: %v", err)
		}
		if err := p.ClaimLanguageExclusive(ctx, "t", "es", "w2", ""); err != nil {
			t.Fatalf("other session: %v", err)
		}
		// w3 replaces w1 (its earlier connection): no conflict, both present
		// until w1 releases.
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w3", "w1"); err != nil {
			t.Fatalf("replacing: %v", err)
		}
		if produced, _ := p.ReleaseLanguage(ctx, "s", "es", "w1"); !produced {
			t.Fatal("es unproduced while w3 claims it")
		}
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w2", ""); pentecost.ErrorCode(err) != pentecost.ECONFLICT {
			t.Fatalf("w2 after the replacement: %v, want %s", err, pentecost.ECONFLICT)
		}
		_, _ = p.ReleaseLanguage(ctx, "s", "es", "w3")
		if err := p.ClaimLanguageExclusive(ctx, "s", "es", "w2", ""); err != nil {
			t.Fatalf("after release: %v", err)
		}
		// A non-exclusive claim still joins an exclusive one (compatibility).
		if produced, err := p.ClaimLanguage(ctx, "s", "es", "w4"); err != nil || !produced {
			t.Fatalf("plain claim = %v, %v", produced, err)
		}
	})

	t.Run("ConcurrentExclusiveClaims", func(t *testing.T) {
		p := newPresence(t)
		const workers = 20
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for i := range workers {
			wg.Go(func() { errs[i] = p.ClaimLanguageExclusive(ctx, "s", "es", fmt.Sprint("w", i), "") })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch pentecost.ErrorCode(err) {
			case "":
				won++
			case pentecost.ECONFLICT:
			default:
				t.Fatalf("claim: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d workers won, want exactly 1", won)
		}
	})

	t.Run("Speakers", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			wantSpeaker(t, p, "s", false)
			if others, err := p.SpeakerJoin(ctx, "s", "a"); err != nil || others {
				t.Fatalf("first speaker: others = %v, %v", others, err)
			}
			wantSpeaker(t, p, "s", true)
			wantSpeaker(t, p, "t", false)
			if others, err := p.SpeakerJoin(ctx, "s", "a"); err != nil || others {
				t.Fatalf("joining again (a renewal): others = %v, %v", others, err)
			}
		})
		t.Run("RefreshOverlaps", func(t *testing.T) {
			p := newPresence(t)
			_, _ = p.SpeakerJoin(ctx, "s", "a")
			// A refresh: the new connection joins before the old one leaves.
			if others, err := p.SpeakerJoin(ctx, "s", "b"); err != nil || !others {
				t.Fatalf("second connection: others = %v, %v", others, err)
			}
			if err := p.SpeakerLeave(ctx, "s", "a"); err != nil {
				t.Fatal(err)
			}
			wantSpeaker(t, p, "s", true)
			if err := p.SpeakerLeave(ctx, "s", "b"); err != nil {
				t.Fatal(err)
			}
			wantSpeaker(t, p, "s", false)
		})
		t.Run("LeaveIdempotent", func(t *testing.T) {
			p := newPresence(t)
			for range 2 {
				if err := p.SpeakerLeave(ctx, "s", "a"); err != nil {
					t.Fatal(err)
				}
			}
			wantSpeaker(t, p, "s", false)
		})
		t.Run("RemoveSession", func(t *testing.T) {
			p := newPresence(t)
			_, _ = p.SpeakerJoin(ctx, "s", "a")
			if err := p.RemoveSession(ctx, "s"); err != nil {
				t.Fatal(err)
			}
			wantSpeaker(t, p, "s", false)
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			p := newPresence(t)
			if _, err := p.SpeakerJoin(ctx, "", "a"); pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
				t.Fatalf("no session: %v", err)
			}
			if _, err := p.SpeakerJoin(ctx, "s", ""); pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
				t.Fatalf("no connection: %v", err)
			}
		})
	})

	t.Run("Offers", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			p := newPresence(t)
			wantOffered(t, p, "en")
			if err := p.OfferLanguages(ctx, "w1", pentecost.LanguageOffer{"en": {"gl", "es", "ca"}, "es": {"en"}}); err != nil {
				t.Fatal(err)
			}
			if err := p.OfferLanguages(ctx, "w2", pentecost.LanguageOffer{"en": {"es", "fr"}}); err != nil {
				t.Fatal(err)
			}
			wantOffered(t, p, "en", "ca", "es", "fr", "gl")
			wantOffered(t, p, "es", "en")
			wantOffered(t, p, "de")
		})
		t.Run("Replaces", func(t *testing.T) {
			p := newPresence(t)
			_ = p.OfferLanguages(ctx, "w1", pentecost.LanguageOffer{"en": {"es", "ca"}})
			_ = p.OfferLanguages(ctx, "w2", pentecost.LanguageOffer{"en": {"fr"}})
			if err := p.OfferLanguages(ctx, "w1", pentecost.LanguageOffer{"en": {"gl"}}); err != nil {
				t.Fatal(err)
			}
			wantOffered(t, p, "en", "fr", "gl")
		})
		t.Run("Withdraw", func(t *testing.T) {
			p := newPresence(t)
			_ = p.OfferLanguages(ctx, "w1", pentecost.LanguageOffer{"en": {"es"}})
			_ = p.OfferLanguages(ctx, "w2", pentecost.LanguageOffer{"en": {"es"}})
			if err := p.OfferLanguages(ctx, "w1", nil); err != nil {
				t.Fatal(err)
			}
			wantOffered(t, p, "en", "es") // w2 still offers it
			if err := p.OfferLanguages(ctx, "w2", pentecost.LanguageOffer{}); err != nil {
				t.Fatal(err)
			}
			wantOffered(t, p, "en")
			if err := p.OfferLanguages(ctx, "w3", nil); err != nil {
				t.Fatalf("withdrawing nothing: %v", err)
			}
		})
		t.Run("AllOffered", func(t *testing.T) {
			p := newPresence(t)
			got, err := p.AllOffered(ctx)
			if err != nil || got == nil || len(got) != 0 {
				t.Fatalf("AllOffered with no offer = %v, %v; want empty", got, err)
			}
			_ = p.OfferLanguages(ctx, "w1", pentecost.LanguageOffer{"en": {"gl", "es"}, pentecost.OfferTiersKey: {"premium", "standard"}})
			_ = p.OfferLanguages(ctx, "w2", pentecost.LanguageOffer{"en": {"es", "ca"}, "fr": {"en"}})
			got, err = p.AllOffered(ctx)
			want := pentecost.LanguageOffer{"en": {"ca", "es", "gl"}, "fr": {"en"}, pentecost.OfferTiersKey: {"premium", "standard"}}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("AllOffered = %v, %v; want %v", got, err, want)
			}
			_ = p.OfferLanguages(ctx, "w1", nil)
			got, _ = p.AllOffered(ctx)
			if want := (pentecost.LanguageOffer{"en": {"ca", "es"}, "fr": {"en"}}); !reflect.DeepEqual(got, want) {
				t.Fatalf("AllOffered after a withdrawal = %v; want %v", got, want)
			}
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			p := newPresence(t)
			if err := p.OfferLanguages(ctx, "", pentecost.LanguageOffer{"en": {"es"}}); pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
				t.Fatalf("no worker: %v", err)
			}
		})
	})
}

func wantSpeaker(tb testing.TB, p pentecost.Presence, sessionID string, want bool) {
	tb.Helper()
	got, err := p.SpeakerConnected(context.Background(), sessionID)
	if err != nil || got != want {
		tb.Fatalf("SpeakerConnected(%q) = %v, %v; want %v", sessionID, got, err, want)
	}
}

func wantOffered(tb testing.TB, p pentecost.Presence, source string, want ...string) {
	tb.Helper()
	got, err := p.OfferedLanguages(context.Background(), source)
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("OfferedLanguages(%q) = %v, want %v", source, got, want)
	}
}
