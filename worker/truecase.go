package worker

import (
	"bufio"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Truecaser restores the capitals a recogniser leaves out: pocketsphinx
// writes "i want to talk", which apertium reads as an unknown word "i"
// followed by a third person ("i Quiere charla") where "I want to talk"
// gives "Quiero charla". It capitalises the first word, the pronoun "I"
// (and its contractions) and the names it has learnt from a corpus. The
// zero Truecaser knows no names. It is safe for concurrent use once built.
type Truecaser struct {
	// Names maps lower-case words to the capitalised form in which they
	// always appear (e.g. "john" → "John").
	Names map[string]string
}

// pronounI holds the lower-case forms of "I" a recogniser writes.
var pronounI = map[string]string{"i": "I", "i'm": "I'm", "i'll": "I'll", "i've": "I've", "i'd": "I'd"}

// LearnTruecaser reads a corpus of sentences (one a line) and learns the
// words that are capitalised wherever they appear other than at the start
// of a sentence, and never appear in lower case: names such as "John",
// "Isaiah" or "Lord". A word seen only at the start of sentences is not a
// name as far as the corpus can tell ("Today").
func LearnTruecaser(corpus io.Reader) (*Truecaser, error) {
	capital := map[string]string{}
	lower := map[string]bool{}
	sc := bufio.NewScanner(corpus)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		first := true
		for _, w := range strings.FieldsFunc(sc.Text(), func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
		}) {
			w = strings.Trim(w, "'")
			if w == "" {
				continue
			}
			r, _ := utf8.DecodeRuneInString(w)
			low := strings.ToLower(w)
			switch {
			case !unicode.IsUpper(r):
				lower[low] = true
			case !first:
				capital[low] = w
			}
			first = false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	t := &Truecaser{Names: map[string]string{}}
	for low, w := range capital {
		if !lower[low] && pronounI[low] == "" {
			t.Names[low] = w
		}
	}
	return t, nil
}

// Apply returns text with its first word, "I" and known names capitalised.
// Words already capitalised are left as they are.
func (t *Truecaser) Apply(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		low := strings.ToLower(w)
		switch {
		case pronounI[low] != "":
			words[i] = pronounI[low]
		case t != nil && t.Names[low] != "" && w == low:
			words[i] = t.Names[low]
		case i == 0:
			words[i] = upperFirst(w)
		}
	}
	return strings.Join(words, " ")
}

func upperFirst(w string) string {
	r, n := utf8.DecodeRuneInString(w)
	if r == utf8.RuneError || unicode.IsUpper(r) {
		return w
	}
	return string(unicode.ToUpper(r)) + w[n:]
}
