package inmem_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/inmem"
)

func TestPresence(t *testing.T) {
	ctx := t.Context()
	t.Run("OK", func(t *testing.T) {
		p := inmem.NewPresence()
		c, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: "a", Language: "en"}, 2, false)
		if err != nil || c.Total != 1 || c.ByLanguage["en"] != 1 {
			t.Fatalf("join = %+v, %v", c, err)
		}
		c, err = p.ChangeLanguage(ctx, "s", "a", "es")
		if err != nil || c.ByLanguage["es"] != 1 || c.ByLanguage["en"] != 0 {
			t.Fatalf("change = %+v, %v", c, err)
		}
	})
	t.Run("ErrSessionFull", func(t *testing.T) {
		p := inmem.NewPresence()
		for _, id := range []string{"a", "b"} {
			if _, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: id, Language: "en"}, 2, false); err != nil {
				t.Fatal(err)
			}
		}
		_, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: "c", Language: "en"}, 2, false)
		if pentecost.ErrorCode(err) != pentecost.ESESSIONFULL {
			t.Fatalf("err = %v", err)
		}
		// A refresh may exceed the cap.
		if c, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: "c", Language: "en"}, 2, true); err != nil || c.Total != 3 {
			t.Fatalf("refresh = %+v, %v", c, err)
		}
	})
	t.Run("LeaveIdempotent", func(t *testing.T) {
		p := inmem.NewPresence()
		_, _ = p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: "a", Language: "en"}, 0, false)
		if _, left, _ := p.Leave(ctx, "s", "a"); !left {
			t.Fatal("first leave not reported")
		}
		c, left, _ := p.Leave(ctx, "s", "a")
		if left || c.Total != 0 || len(c.ByLanguage) != 0 {
			t.Fatalf("second leave = %+v, %v", c, left)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		p := inmem.NewPresence()
		if _, err := p.ChangeLanguage(ctx, "s", "x", "en"); pentecost.ErrorCode(err) != pentecost.ENOTFOUND {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ConcurrentCapIsAtomic", func(t *testing.T) {
		p := inmem.NewPresence()
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprint(i)
				_, _ = p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: id, Language: "en"}, 50, false)
				if i%2 == 0 {
					_, _, _ = p.Leave(ctx, "s", id)
					_, _, _ = p.Leave(ctx, "s", id)
				}
			}()
		}
		wg.Wait()
		c, _ := p.Counts(ctx, "s")
		if c.Total > 50 || c.Total < 0 || c.Total != c.ByLanguage["en"] {
			t.Fatalf("counts = %+v", c)
		}
	})
	t.Run("Claims", func(t *testing.T) {
		p := inmem.NewPresence()
		_, _ = p.ClaimLanguage(ctx, "s", "es", "w1")
		_, _ = p.ClaimLanguage(ctx, "s", "es", "w2")
		if produced, _ := p.ReleaseLanguage(ctx, "s", "es", "w1"); !produced {
			t.Fatal("es released while w2 still produces it")
		}
		if produced, _ := p.ReleaseLanguage(ctx, "s", "es", "w2"); produced {
			t.Fatal("es still produced")
		}
		if l, _ := p.ProducedLanguages(ctx, "s"); len(l) != 0 {
			t.Fatalf("produced = %v", l)
		}
	})
}
