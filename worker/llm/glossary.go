package llm

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Term is one glossary entry: Source, in the source language, becomes
// Target; an empty Target means the term is kept as it is (a name).
type Term struct {
	Source, Target string
}

// Glossary holds the terms of each language pair ("en-es"). A pair "*-*"
// or "en-*" applies to every target language (names kept as they are).
type Glossary map[string][]Term

// LoadGlossary reads a glossary file (ParseGlossary).
func LoadGlossary(path string) (Glossary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("glossary: %w", err)
	}
	defer f.Close()
	return ParseGlossary(f)
}

// ParseGlossary reads one entry a line: PAIR, SOURCE TERM, TARGET TERM,
// separated by tabs (TSV) or, on a line without a tab, by commas (CSV, with
// its quoting). PAIR is "en-es", "en-*" or "*-*"; an empty or missing
// TARGET TERM keeps the term as it is. Blank lines and lines starting with
// # are skipped.
//
//	en-es	Holy Spirit	Espíritu Santo
//	en-*	Pentecost Chapel
//	en-ca,"Lord's Supper",Sant Sopar
func ParseGlossary(r io.Reader) (Glossary, error) {
	g := Glossary{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var fields []string
		if strings.Contains(line, "\t") {
			fields = strings.Split(line, "\t")
		} else {
			cr := csv.NewReader(strings.NewReader(line))
			cr.FieldsPerRecord = -1
			rec, err := cr.Read()
			if err != nil {
				return nil, fmt.Errorf("glossary line %d: %v", n, err)
			}
			fields = rec
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if len(fields) < 2 || len(fields) > 3 || fields[1] == "" {
			return nil, fmt.Errorf("glossary line %d: want PAIR, SOURCE TERM[, TARGET TERM]", n)
		}
		from, to, ok := strings.Cut(fields[0], "-")
		if !ok || !validLang(from, true) || !validLang(to, true) || (from == "*" && to != "*") {
			return nil, fmt.Errorf("glossary line %d: %q is not a pair such as en-es, en-* or *-*", n, fields[0])
		}
		t := Term{Source: fields[1]}
		if len(fields) == 3 {
			t.Target = fields[2]
		}
		g[fields[0]] = append(g[fields[0]], t)
	}
	return g, sc.Err()
}

func validLang(s string, wildcard bool) bool {
	if wildcard && s == "*" {
		return true
	}
	if len(s) < 2 || len(s) > 3 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// Terms returns every term for translating from into to, the pair's own
// entries first (they win over wildcard ones for the same source term).
func (g Glossary) Terms(from, to string) []Term {
	var out []Term
	seen := map[string]bool{}
	for _, k := range []string{from + "-" + to, from + "-*", "*-*"} {
		for _, t := range g[k] {
			key := strings.ToLower(t.Source)
			if !seen[key] {
				seen[key] = true
				out = append(out, t)
			}
		}
	}
	return out
}

// Matching returns the terms for from→to that occur in text, as whole
// words, ignoring case, longest first.
func (g Glossary) Matching(text, from, to string) []Term {
	var out []Term
	for _, t := range g.Terms(from, to) {
		if containsWord(text, t.Source) {
			out = append(out, t)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Source) > len(out[j].Source) })
	return out
}

// containsWord reports whether term occurs in text, ignoring case, not as
// part of a longer word.
func containsWord(text, term string) bool {
	lt, lw := strings.ToLower(text), strings.ToLower(term)
	for off := 0; ; {
		i := strings.Index(lt[off:], lw)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(lw)
		before, _ := utf8.DecodeLastRuneInString(lt[:start])
		after, _ := utf8.DecodeRuneInString(lt[end:])
		if (start == 0 || !isWordRune(before)) && (end == len(lt) || !isWordRune(after)) {
			return true
		}
		off = start + 1
	}
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
