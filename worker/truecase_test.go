package worker_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
)

func TestTruecase(t *testing.T) {
	f, err := os.Open("testdata/sermon-corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tc, err := worker.LearnTruecaser(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"i want to talk", "I want to talk"},
		{"today we will read from the gospel of john", "Today we will read from the gospel of John"},
		{"the lord is my shepherd and i shall not want", "The Lord is my shepherd and I shall not want"},
		{"i'm sure i'll be there", "I'm sure I'll be there"},
		{"let us pray", "Let us pray"}, // "let" starts sentences only: not a name
		{"  ", ""},
	} {
		if got := tc.Apply(c.in); got != c.want {
			t.Errorf("Apply(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// Without a corpus: the first word and "I" only.
	if got := (*worker.Truecaser)(nil).Apply("and then i met john"); got != "And then I met john" {
		t.Errorf("nil Truecaser: %q", got)
	}
}

// TestTruecaseApertium: apertium's Spanish of pocketsphinx's lower-case
// output, before and after truecasing, on the real engine.
func TestTruecaseApertium(t *testing.T) {
	a := worker.NewApertium()
	requirePackages(t, a.Open())
	f, err := os.Open("testdata/sermon-corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tc, err := worker.LearnTruecaser(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ heard, wantBefore, wantAfter string }{
		{"i want to talk", "i Quiere", "Quiero"},
		{"i will pray for john", "i Rogará", "Rogaré"},
	} {
		before, err := a.Translate(context.Background(), c.heard, "en", "es")
		if err != nil {
			t.Fatal(err)
		}
		after, err := a.Translate(context.Background(), tc.Apply(c.heard), "en", "es")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%q → %q; truecased %q → %q", c.heard, before, tc.Apply(c.heard), after)
		if !strings.HasPrefix(before, c.wantBefore) {
			t.Errorf("apertium(%q) = %q: expected the lower-case failure %q (has apertium changed?)", c.heard, before, c.wantBefore)
		}
		if !strings.HasPrefix(after, c.wantAfter) {
			t.Errorf("apertium(%q) = %q, want it to start %q", tc.Apply(c.heard), after, c.wantAfter)
		}
	}
}

// TestTruecasePocketsphinxCorpus: the recogniser learns its names from its
// domain corpus, and recognises with them.
func TestTruecasePocketsphinxCorpus(t *testing.T) {
	p := worker.NewPocketsphinx()
	p.Corpus, p.Dir = "testdata/sermon-corpus.txt", t.TempDir()
	requirePackages(t, p.Open())
	for low, want := range map[string]string{"john": "John", "lord": "Lord", "isaiah": "Isaiah"} {
		if got := p.Truecaser.Names[low]; got != want {
			t.Errorf("name %q learnt as %q, want %q", low, got, want)
		}
	}
	got, err := p.Recognize(context.Background(), espeak(t, "en-us", "the lord is my shepherd"), "en")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recognised %q", got)
	if !strings.HasPrefix(got, "The Lord") {
		t.Errorf("recognised %q, want it truecased: \"The Lord ...\"", got)
	}
}
