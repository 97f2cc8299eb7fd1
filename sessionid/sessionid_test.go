package sessionid_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// minWords is the floor for each list.
const minWords = 150

// maxWordLen keeps IDs short enough to read aloud and type on a phone.
const maxWordLen = 12

var (
	formatRe = regexp.MustCompile(`^[a-z]+-[a-z]+-[1-9][0-9]{2}$`)
	wordRe   = regexp.MustCompile(`^[a-z]+$`)
)

func TestLists(t *testing.T) {
	lists := map[string][]string{
		"adjectives": sessionid.Adjectives(),
		"nouns":      sessionid.Nouns(),
	}
	blocklist := sessionid.Blocklist()

	for name, words := range lists {
		t.Run(name, func(t *testing.T) {
			if len(words) < minWords {
				t.Fatalf("%d words, want at least %d", len(words), minWords)
			}
			seen := make(map[string]bool, len(words))
			for _, w := range words {
				if seen[w] {
					t.Errorf("duplicate %q", w)
				}
				seen[w] = true
				if !wordRe.MatchString(w) {
					t.Errorf("%q is not lowercase ASCII letters only", w)
				}
				if len(w) > maxWordLen {
					t.Errorf("%q is longer than %d letters", w, maxWordLen)
				}
				for _, b := range blocklist {
					if strings.Contains(w, b) {
						t.Errorf("%q contains blocklisted %q", w, b)
					}
				}
			}
		})
	}

	t.Run("Disjoint", func(t *testing.T) {
		for _, w := range lists["adjectives"] {
			if slices.Contains(lists["nouns"], w) {
				t.Errorf("%q is in both lists", w)
			}
		}
	})

	t.Run("Blocklist", func(t *testing.T) {
		if len(blocklist) == 0 {
			t.Fatal("empty blocklist")
		}
		re := regexp.MustCompile(`^([a-z]+|[1-9][0-9]{2})$`)
		seen := map[string]bool{}
		for _, w := range blocklist {
			if !re.MatchString(w) {
				t.Errorf("blocklist entry %q is neither a lowercase word nor a number 100..999", w)
			}
			if seen[w] {
				t.Errorf("duplicate blocklist entry %q", w)
			}
			seen[w] = true
		}
	})
}

func TestGenerator_New(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		g := sessionid.NewGenerator()
		adjectives, nouns := sessionid.Adjectives(), sessionid.Nouns()
		for range 2000 {
			id := g.New()
			if !formatRe.MatchString(id) || !sessionid.Valid(id) {
				t.Fatalf("New() = %q, not in the ID format", id)
			}
			if got, err := sessionid.Normalize(id); err != nil || got != id {
				t.Fatalf("Normalize(%q) = %q, %v; want it unchanged", id, got, err)
			}
			parts := strings.Split(id, "-")
			if !slices.Contains(adjectives, parts[0]) || !slices.Contains(nouns, parts[1]) {
				t.Fatalf("New() = %q uses a word not in the lists", id)
			}
		}
	})

	t.Run("SkipsBlockedNumber", func(t *testing.T) {
		// Draws come in threes (adjective, noun, number): the first number
		// is 666, which is blocklisted, the second is 101.
		draws := []int{0, 0, 566, 0, 0, 1}
		g := &sessionid.Generator{Rand: func(n int) int {
			v := draws[0]
			draws = draws[1:]
			return v
		}}
		want := sessionid.Adjectives()[0] + "-" + sessionid.Nouns()[0] + "-101"
		if got := g.New(); got != want {
			t.Fatalf("New() = %q, want %q", got, want)
		}
	})

	t.Run("StuckRandStillEnds", func(t *testing.T) {
		// A source that always lands on 666 must not loop forever.
		g := &sessionid.Generator{Rand: func(n int) int {
			if n == sessionid.MaxNumber-sessionid.MinNumber+1 {
				return 666 - sessionid.MinNumber
			}
			return 0
		}}
		want := sessionid.Adjectives()[0] + "-" + sessionid.Nouns()[0] + "-100"
		if got := g.New(); got != want {
			t.Fatalf("New() = %q, want %q", got, want)
		}
	})
}

func TestBlocked(t *testing.T) {
	for _, tt := range []struct {
		adj, noun string
		num       int
		want      bool
	}{
		{"golden", "eagle", 427, false},
		{"golden", "eagle", 666, true},
		{"devil", "eagle", 427, true}, // a whole word
		{"gold", "evil", 100, true},   // "devil" across the join
		{"faithful", "lamb", 100, false},
		{"sla", "yer", 100, true}, // "slay" across the join
		{"unkind", "hell", 100, true},
	} {
		if got := sessionid.Blocked(tt.adj, tt.noun, tt.num); got != tt.want {
			t.Errorf("Blocked(%q, %q, %d) = %v, want %v", tt.adj, tt.noun, tt.num, got, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tt := range []struct{ in, want string }{
			{"golden-eagle-427", "golden-eagle-427"},
			{"Golden-Eagle-427", "golden-eagle-427"},
			{" golden eagle 427 ", "golden-eagle-427"},
			{"GOLDEN_EAGLE_427", "golden-eagle-427"},
			{"golden.eagle.427", "golden-eagle-427"},
			{"golden  --  eagle __ 427", "golden-eagle-427"},
			{"\tgolden\teagle\t427\n", "golden-eagle-427"},
			{"-golden-eagle-427-", "golden-eagle-427"},
			{"ancient-aardvark-100", "ancient-aardvark-100"}, // words outside our lists still work
			{"x-y-999", "x-y-999"},
		} {
			got, err := sessionid.Normalize(tt.in)
			if err != nil {
				t.Errorf("Normalize(%q): %v", tt.in, err)
			} else if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		}
	})

	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		for _, in := range []string{
			"",
			"   ",
			"golden",
			"golden-eagle",
			"golden-eagle-",
			"golden-eagle-099",
			"golden-eagle-1000",
			"golden-eagle-42",
			"golden-eagle-42a",
			"golden-eagle-427-x",
			"golden-427-eagle",
			"123-eagle-427",
			"golden-eagle427",
			"goldeneagle-427",
			"gölden-eagle-427",
			"golden/eagle/427",
			"golden-eagle-４２７",
			"golden-\u212Aite-427", // Kelvin sign: not an ASCII letter
			strings.Repeat("a", 30) + "-" + strings.Repeat("b", 30) + "-427", // 65 bytes
			strings.Repeat(" ", 60) + "a-b-100",                              // long input, short ID
		} {
			_, err := sessionid.Normalize(in)
			if code := pentecost.ErrorCode(err); code != pentecost.EINVALIDSESSIONID {
				t.Errorf("Normalize(%q) code = %q, want %q", in, code, pentecost.EINVALIDSESSIONID)
			}
		}
	})
}

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"golden-eagle-427", true},
		{"a-b-100", true},
		{"golden-eagle-999", true},
		{"Golden-eagle-427", false},
		{" golden-eagle-427", false},
		{"golden--eagle-427", false},
		{"golden_eagle_427", false},
		{"golden-eagle-099", false},
		{"golden-eagle-4270", false},
		{"golden-eagle", false},
		{"", false},
		{strings.Repeat("a", 30) + "-" + strings.Repeat("b", 29) + "-427", true},  // 64 bytes
		{strings.Repeat("a", 30) + "-" + strings.Repeat("b", 30) + "-427", false}, // 65 bytes
	} {
		if got := sessionid.Valid(tt.id); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"golden-eagle-427", " Golden Eagle 427 ", "GOLDEN_EAGLE_427", "a-b-099", "--", "é-é-100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := sessionid.Normalize(in)
		if err != nil {
			if code := pentecost.ErrorCode(err); code != pentecost.EINVALIDSESSIONID {
				t.Fatalf("Normalize(%q) code = %q, want %q", in, code, pentecost.EINVALIDSESSIONID)
			}
			return
		}
		if !sessionid.Valid(out) {
			t.Fatalf("Normalize(%q) = %q, which is not Valid", in, out)
		}
		if again, err := sessionid.Normalize(out); err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, %v; want the fixed point %q", out, again, err, out)
		}
	})
}
