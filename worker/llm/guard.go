package llm

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// The guard's bounds: a translation is rarely under a third or over three
// times the length of its source (Spanish runs ~1.2× English; a
// one-word "Yes." → "Sí." is 0.75×). Short sources are exempt from the
// lower bound, where one word's length decides everything.
const (
	minRatio       = 0.3
	maxRatio       = 3.0
	shortSource    = 12 // characters: below this, only the upper bound applies
	maxShortAnswer = 60 // characters an answer to a short source may reach
)

// errTalking and its kin are why an answer was refused; they carry no user
// text, so they may reach the logs.
var (
	errEmptyAnswer = errors.New("empty answer")
	errTooShort    = errors.New("answer much shorter than the source")
	errTooLong     = errors.New("answer much longer than the source")
	errTalking     = errors.New("answer talks to the user instead of translating")
	errEcho        = errors.New("answer repeats the source untranslated")
)

// talkMarkers, anywhere in an answer, show a model talking about the
// task instead of doing it. Lower case; skipped when the source itself
// holds the phrase.
var talkMarkers = []string{
	"as an ai", "as a language model", "as an assistant", "i cannot translate", "i can't translate",
	"unable to translate", "here is the translation", "here's the translation", "here is your translation",
	"the translation is", "translation of the text", "como modelo de lenguaje", "aquí está la traducción",
	"aquí tienes la traducción", "en tant qu'ia", "voici la traduction",
}

// openers start a reply to a person ("I'm sorry, I can't help with
// that."), by language. A translation into that language may begin the
// same way, so there they count only with a word about the task beside
// them.
var openers = map[string][]string{
	"en": {"i'm sorry", "i am sorry", "sorry,", "i apologize", "i apologise", "i cannot", "i can't", "i'm unable", "i am unable", "sure!", "sure,", "certainly", "of course!"},
	"es": {"lo siento", "claro,", "¡claro", "por supuesto,"},
}

var taskWords = []string{"translat", "traduc", "assist", "help with", "language model", "the text", "this request"}

// wrapperPrefixes are labels a model puts before an otherwise good
// translation; they are cut rather than the answer refused.
var wrapperPrefixes = []string{"translation:", "translated:", "traducción:", "traducció:", "tradución:", "traduction:", "output:"}

// Clean checks a model's answer to a translation request and returns the
// translation: harmless wrappers (a "Translation:" label, quotes around the
// whole answer that the source did not have, surrounding blank lines) are
// stripped; an answer that is no translation (a refusal, a remark to the
// user, an echo of the source when the languages differ, a length far from
// the source's) is an error.
func Clean(source, answer, from, to string) (string, error) {
	a := strings.TrimSpace(answer)
	for changed := true; changed; {
		changed = false
		low := strings.ToLower(a)
		for _, p := range wrapperPrefixes {
			if strings.HasPrefix(low, p) {
				a, changed = strings.TrimSpace(a[len(p):]), true
				break
			}
		}
		if q, ok := unquote(a); ok && !quoted(strings.TrimSpace(source)) {
			a, changed = strings.TrimSpace(q), true
		}
	}
	if a == "" {
		return "", errEmptyAnswer
	}
	low := strings.ToLower(a)
	srcLow := strings.ToLower(source)
	for _, m := range talkMarkers {
		if strings.Contains(low, m) && !strings.Contains(srcLow, m) {
			return "", errTalking
		}
	}
	for lang, ms := range openers {
		for _, m := range ms {
			if strings.HasPrefix(low, m) && !strings.HasPrefix(srcLow, m) && (to != lang || containsAny(low, taskWords)) {
				return "", errTalking
			}
		}
	}
	if strings.Count(a, "\n") > strings.Count(strings.TrimSpace(source), "\n")+1 {
		return "", errTalking // notes or alternatives under the translation
	}
	if from != to && sameText(source, a) && utf8.RuneCountInString(strings.TrimSpace(source)) >= shortSource {
		return "", errEcho
	}
	ns, na := utf8.RuneCountInString(strings.TrimSpace(source)), utf8.RuneCountInString(a)
	if ns < shortSource {
		if na > maxShortAnswer {
			return "", errTooLong
		}
		return a, nil
	}
	switch r := float64(na) / float64(ns); {
	case r < minRatio:
		return "", errTooShort
	case r > maxRatio:
		return "", errTooLong
	}
	return a, nil
}

var quotePairs = [][2]string{{`"`, `"`}, {"“", "”"}, {"«", "»"}, {"„", "“"}, {"'", "'"}, {"‘", "’"}, {"```", "```"}}

// unquote returns s without the quotes around the whole of it, when there
// are and none of the same quotes inside.
func unquote(s string) (string, bool) {
	for _, q := range quotePairs {
		if len(s) >= len(q[0])+len(q[1]) && strings.HasPrefix(s, q[0]) && strings.HasSuffix(s, q[1]) {
			inner := s[len(q[0]) : len(s)-len(q[1])]
			if !strings.Contains(inner, q[0]) && !strings.Contains(inner, q[1]) {
				return inner, true
			}
		}
	}
	return "", false
}

func quoted(s string) bool {
	_, ok := unquote(s)
	return ok
}

// sameText compares ignoring case, spaces and punctuation at the ends.
func sameText(a, b string) bool {
	norm := func(s string) string {
		return strings.Join(strings.Fields(strings.ToLower(strings.Trim(s, " \t\n.,;:!?¡¿\"'«»“”"))), " ")
	}
	return norm(a) == norm(b)
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
