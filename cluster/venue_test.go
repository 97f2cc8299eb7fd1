package cluster_test

import (
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/redistest"
)

// venueListener records a listener's joins and events.
type venueListener struct {
	mu     sync.Mutex
	joins  []client.Joined
	events []string
}

func (v *venueListener) has(typ string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.events {
		if e == typ {
			return true
		}
	}
	return false
}

func (v *venueListener) speakerAtJoin(t *testing.T) bool {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.joins) == 0 || v.joins[0].SpeakerConnected == nil {
		t.Fatalf("joins = %+v: no speakerConnected", v.joins)
	}
	return *v.joins[0].SpeakerConnected
}

func venueListen(t *testing.T, url, id string) *venueListener {
	t.Helper()
	v := &venueListener{}
	l := client.NewListener(url, id, "en")
	l.OnJoined = func(j client.Joined) {
		v.mu.Lock()
		v.joins = append(v.joins, j)
		v.mu.Unlock()
	}
	l.OnEvent = func(e client.Event) {
		v.mu.Lock()
		v.events = append(v.events, e.Type)
		v.mu.Unlock()
	}
	if err := l.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("listener on %s: %v", url, err)
	}
	t.Cleanup(func() { l.Close() })
	return v
}

type sessionLanguages struct {
	SessionID string `json:"sessionId"`
	Languages []struct {
		Code   string `json:"code"`
		Status string `json:"status"`
	} `json:"languages"`
}

func (s sessionLanguages) flat() []string {
	var out []string
	for _, l := range s.Languages {
		out = append(out, l.Code+":"+l.Status)
	}
	return out
}

// TestCluster_VenueState: what listeners' and speakers' pages need is the
// same on every node. A worker on A offers and claims languages, which
// GET /sessions/{id}/languages on B reports; a speaker on A is connected
// for listeners joining on B, and a listener on B who joined before the
// speaker hears it arrive.
func TestCluster_VenueState(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL(), "WORKER_CREDENTIALS="+workerCredential)
	b := startNode(t, "B", srv.URL(), "WORKER_CREDENTIALS="+workerCredential)

	var created struct {
		SessionID string `json:"sessionId"`
	}
	if status, code := do(t, "POST", a.url+"/sessions", token, map[string]string{"sourceLanguage": "en"}, &created); status != http.StatusCreated {
		t.Fatalf("create session: %d %s", status, code)
	}
	id := created.SessionID
	languagesOn := func(url string) []string {
		var got sessionLanguages
		if status, code := do(t, "GET", url+"/sessions/"+id+"/languages", "", nil, &got); status != http.StatusOK {
			t.Fatalf("languages: %d %s", status, code)
		}
		return got.flat()
	}
	if got := languagesOn(b.url); !reflect.DeepEqual(got, []string{"en:source"}) {
		t.Fatalf("before any worker: %v", got)
	}

	w := client.NewWorker(a.url, workerCredential)
	if err := w.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("worker: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.OfferLanguages(ctx(t, 10*time.Second), map[string][]string{"en": {"es", "ca"}}); err != nil {
		t.Fatal(err)
	}
	if got := languagesOn(b.url); !reflect.DeepEqual(got, []string{"en:source", "ca:available", "es:available"}) {
		t.Fatalf("offered on A, seen on B: %v", got)
	}
	if err := w.Claim(ctx(t, 10*time.Second), id, "es"); err != nil {
		t.Fatal(err)
	}
	if got := languagesOn(b.url); !reflect.DeepEqual(got, []string{"en:source", "es:live", "ca:available"}) {
		t.Fatalf("claimed on A, seen on B: %v", got)
	}

	early := venueListen(t, b.url, id)
	if early.speakerAtJoin(t) {
		t.Fatal("speakerConnected true before any speaker")
	}
	sp := client.NewSpeaker(a.url, token)
	sp.SessionID = id
	if err := sp.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("speaker: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	waitFor(t, 10*time.Second, "speakerReconnected on B for the speaker's first connection on A",
		func() bool { return early.has(client.EventSpeakerReconnected) })
	late := venueListen(t, b.url, id)
	if !late.speakerAtJoin(t) {
		t.Fatal("speakerConnected false on B with the speaker on A")
	}

	// The worker leaves: its offer and claim go on every node.
	w.Close()
	waitFor(t, 10*time.Second, "the worker's languages gone on B", func() bool {
		return reflect.DeepEqual(languagesOn(b.url), []string{"en:source"})
	})
}
