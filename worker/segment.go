package worker

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Cutting the transcript. A recogniser's hypotheses grow word by word; the
// leading words it will not revise (its Stable prefix, or for an engine
// that does not say, words unchanged over stableHypotheses hypotheses or
// stableAfter) are cut into segments at sentence and clause boundaries, so
// that translation and synthesis start while the speaker is still talking.
// A final hypothesis cuts whatever is left.
const (
	// stableHypotheses and stableAfter make a word stable for engines
	// that give no stability: unchanged (with every word before it) in
	// that many hypotheses, or for that long.
	stableHypotheses = 3
	stableAfter      = 600 * time.Millisecond
	// minClauseWords is the least a clause needs to be cut at its comma:
	// "Yes, …" is not worth a translation of its own.
	minClauseWords = 3
	// contextSentences is how many previous sentences go to a
	// ContextTranslator.
	contextSentences = 3
)

// cut is a segment of the transcript ready to translate.
type cut struct {
	text string
	// sentenceEnd: the segment ends its sentence (a full stop or a final
	// hypothesis).
	sentenceEnd bool
	// first, last are the segment's word positions in its hypothesis, of
	// n words then heard: they place it in the hypothesis's audio.
	first, last, n int
	// previous holds earlier sentences and earlier segments of this
	// sentence, oldest first: context for the translator.
	previous []string
}

// cutter turns hypotheses into segments. It is owned by one goroutine.
type cutter struct {
	// maxWords cuts a stable run without punctuation at this many words
	// (engines that give none, like Vosk); 0: only at boundaries.
	maxWords int

	words    []string
	done     int         // words of the current hypothesis already cut
	since    []time.Time // per word of words: when it (and all before it) last changed
	count    []int       // per word: hypotheses it has been unchanged in
	sentence []string    // segments of the sentence in progress
	history  []string    // previous sentences, oldest first
}

// next takes a hypothesis heard at now and returns the segments it
// completes, and the stable words not yet cut (for a preview caption).
func (c *cutter) next(h Hypothesis, now time.Time) (cuts []cut, tail string) {
	words := strings.Fields(h.Text)
	c.track(words, now)
	stable := len(words)
	if !h.Final {
		stable = c.stableWords(h, now)
	}
	// A revision may shorten the hypothesis below what was cut: what was
	// cut stays cut, the rest follows it.
	start := min(c.done, len(words))
	i := start
	for j := start; j < stable; j++ {
		w := words[j]
		switch {
		case sentenceBoundary(w):
			cuts = append(cuts, c.take(words, i, j+1, true))
			i = j + 1
		case h.Final:
			// A final is all there: cutting it at its clauses only costs
			// more engine calls (half a second each for apertium) and
			// context.
		case clauseBoundary(w) && j+1-i >= minClauseWords,
			c.maxWords > 0 && j+1-i >= c.maxWords:
			cuts = append(cuts, c.take(words, i, j+1, false))
			i = j + 1
		}
	}
	if h.Final {
		if i < len(words) {
			cuts = append(cuts, c.take(words, i, len(words), true))
		} else if len(c.sentence) > 0 {
			// The final ends a sentence whose last segment was cut at a
			// clause boundary: mark the sentence done with an empty cut.
			cuts = append(cuts, c.take(words, len(words), len(words), true))
		}
		c.words, c.since, c.count, c.done = nil, nil, nil, 0
		return cuts, ""
	}
	c.done = max(c.done, i)
	if stable > i {
		tail = strings.Join(words[i:stable], " ")
	}
	return cuts, tail
}

// take cuts words[from:to] as a segment.
func (c *cutter) take(words []string, from, to int, sentenceEnd bool) cut {
	text := strings.Join(words[from:to], " ")
	prev := append(append([]string(nil), c.history...), c.sentence...)
	k := cut{text: text, sentenceEnd: sentenceEnd, first: from, last: to, n: len(words), previous: prev}
	if text != "" {
		c.sentence = append(c.sentence, text)
	}
	c.done = to
	if sentenceEnd {
		if s := strings.Join(c.sentence, " "); s != "" {
			c.history = append(c.history, s)
			if len(c.history) > contextSentences {
				c.history = c.history[len(c.history)-contextSentences:]
			}
		}
		c.sentence = nil
	}
	return k
}

// track updates how long each word has been unchanged.
func (c *cutter) track(words []string, now time.Time) {
	k := 0
	for k < len(words) && k < len(c.words) && words[k] == c.words[k] {
		k++
	}
	c.since, c.count = c.since[:min(k, len(c.since))], c.count[:min(k, len(c.count))]
	for i := range c.count {
		c.count[i]++
	}
	for range words[k:] {
		c.since = append(c.since, now)
		c.count = append(c.count, 1)
	}
	c.words = words
}

// stableWords returns how many leading words of h will not change.
func (c *cutter) stableWords(h Hypothesis, now time.Time) int {
	if h.Stable > 0 {
		return len(strings.Fields(h.Text[:min(h.Stable, len(h.Text))]))
	}
	n := 0
	for n < len(c.count) && (c.count[n] >= stableHypotheses || now.Sub(c.since[n]) >= stableAfter) {
		n++
	}
	return n
}

// lastRune returns the last character of a word, closing quotes and
// brackets aside.
func lastRune(w string) rune {
	w = strings.TrimRight(w, `"')]»”’`)
	r, _ := utf8.DecodeLastRuneInString(w)
	return r
}

func sentenceBoundary(w string) bool {
	switch lastRune(w) {
	case '?', '!', '…', '。', '？', '！':
		return true
	case '.':
		// "Let us read St. Paul" is one sentence.
		return !abbreviations[strings.ToLower(w)]
	}
	return false
}

// abbreviations end with a full stop that does not end a sentence, in the
// languages speakers most often use here.
var abbreviations = map[string]bool{
	"st.": true, "mr.": true, "mrs.": true, "ms.": true, "dr.": true, "rev.": true, "fr.": true, "mt.": true,
	"e.g.": true, "i.e.": true, "vs.": true, "sr.": true, "sra.": true, "dña.": true,
	"sto.": true, "sta.": true, "p.": true, "pp.": true, "vol.": true, "cap.": true, "cf.": true,
}

func clauseBoundary(w string) bool {
	switch lastRune(w) {
	case ',', ';', ':', '—', '、', '，':
		return true
	}
	return false
}
