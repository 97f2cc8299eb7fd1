// Package sessionid makes and checks the memorable session IDs people type on
// their phones, such as "golden-eagle-427": an adjective, a noun and a number
// from 100 to 999. The word lists are our own and live in embedded text files.
package sessionid

import (
	"embed"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/pentecost/pentecost"
)

// MaxInputLen is the longest input Normalize looks at. Real IDs are far
// shorter; the bound keeps hostile input cheap to reject.
const MaxInputLen = 64

// Number bounds of the last part of an ID.
const (
	MinNumber = 100
	MaxNumber = 999
)

//go:embed adjectives.txt nouns.txt blocklist.txt
var files embed.FS

var (
	adjectives = lines("adjectives.txt")
	nouns      = lines("nouns.txt")
	blocklist  = lines("blocklist.txt")
)

// lines returns the non-empty, trimmed lines of an embedded list.
func lines(name string) []string {
	text, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time, so this cannot happen
	}
	var out []string
	for _, l := range strings.Split(string(text), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Adjectives returns a copy of the adjective list.
func Adjectives() []string { return append([]string(nil), adjectives...) }

// Nouns returns a copy of the noun list.
func Nouns() []string { return append([]string(nil), nouns...) }

// Blocklist returns a copy of the words that must never appear in a new ID.
func Blocklist() []string { return append([]string(nil), blocklist...) }

// Generator makes new session IDs. The zero value is not usable; call
// NewGenerator.
type Generator struct {
	// Rand returns a uniformly random int in [0, n). IDs are memorable, not
	// secret, so a fast non-cryptographic source is enough.
	Rand func(n int) int
}

// NewGenerator returns a Generator drawing from math/rand/v2, which is safe
// for concurrent use.
func NewGenerator() *Generator {
	return &Generator{Rand: rand.IntN}
}

// maxRandomTries bounds the random draws before New falls back to a scan.
const maxRandomTries = 100

// New returns a new ID such as "golden-eagle-427". It never returns an ID in
// which a blocklisted word appears, including across the join of the two
// words, nor a blocklisted number.
func (g *Generator) New() string {
	for range maxRandomTries {
		adj, noun := adjectives[g.Rand(len(adjectives))], nouns[g.Rand(len(nouns))]
		num := MinNumber + g.Rand(MaxNumber-MinNumber+1)
		if !Blocked(adj, noun, num) {
			return format(adj, noun, num)
		}
	}

	// Only a Rand stuck on a blocked draw gets here; a scan keeps New total.
	for _, adj := range adjectives {
		for _, noun := range nouns {
			if !Blocked(adj, noun, MinNumber) {
				return format(adj, noun, MinNumber)
			}
		}
	}
	panic("sessionid: every word pair is blocklisted")
}

func format(adj, noun string, num int) string {
	return adj + "-" + noun + "-" + strconv.Itoa(num)
}

// Blocked reports whether an ID made of adj, noun and num would show a
// blocklisted word: one inside either word or spanning their join, or a
// blocklisted number.
func Blocked(adj, noun string, num int) bool {
	joined := adj + noun
	n := strconv.Itoa(num)
	for _, w := range blocklist {
		if w == n || strings.Contains(joined, w) {
			return true
		}
	}
	return false
}

// Normalize turns an ID as a person typed it into its canonical form. It
// trims, lowercases ASCII letters and reads any run of whitespace,
// underscores, hyphens or dots as one hyphen, so "Golden-Eagle-427",
// " golden eagle 427 " and "GOLDEN_EAGLE_427" all give "golden-eagle-427".
// The words need not be in our lists, so IDs made with older lists keep
// working. Errors: EINVALIDSESSIONID when the result is not word-word-NNN.
func Normalize(input string) (string, error) {
	if len(input) > MaxInputLen {
		return "", invalid()
	}
	var b strings.Builder
	b.Grow(len(input))
	sep := false
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case isSeparator(c):
			sep = b.Len() > 0 // leading separators vanish
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep {
			b.WriteByte('-')
			sep = false
		}
		b.WriteByte(c) // anything not allowed is caught by Valid below
	}
	out := b.String()
	if !Valid(out) {
		return "", invalid()
	}
	return out, nil
}

func isSeparator(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '_' || c == '-' || c == '.'
}

func invalid() error {
	return pentecost.Errorf(pentecost.EINVALIDSESSIONID, "Session ID must look like golden-eagle-427.")
}

// Valid reports whether id is in canonical form: two words of lowercase
// ASCII letters and a number from 100 to 999, joined by single hyphens, at
// most MaxInputLen bytes long.
func Valid(id string) bool {
	if len(id) > MaxInputLen {
		return false
	}
	adj, rest, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	noun, num, ok := strings.Cut(rest, "-")
	if !ok || !isWord(adj) || !isWord(noun) || len(num) != 3 {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	return num[0] != '0' // 100..999
}

func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}
