package worker

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"unicode"
)

// lmDiscount is the absolute discount taken from every seen bigram.
const lmDiscount = 0.5

// Words splits text into lower-case words: letters, digits and inner
// apostrophes, as pronunciation dictionaries spell them.
func Words(text string) []string {
	f := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
	out := f[:0]
	for _, w := range f {
		if w = strings.Trim(w, "'"); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// WriteARPA builds a bigram language model in ARPA format from a corpus of
// sentences (one a line), for the recogniser's domain vocabulary option.
// Only words known(w) accepts enter the model (a recogniser cannot use a
// word without a pronunciation). Bigrams use absolute discounting
// interpolated with the unigram distribution; the back-off weights make
// each history's distribution sum to one.
// It returns the model's words.
func WriteARPA(w io.Writer, corpus io.Reader, known func(string) bool) ([]string, error) {
	uni := map[string]float64{}
	bi := map[[2]string]float64{}
	hist := map[string]float64{}
	sc := bufio.NewScanner(corpus)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var words []string
		for _, x := range Words(sc.Text()) {
			if known(x) {
				words = append(words, x)
			}
		}
		if len(words) == 0 {
			continue
		}
		seq := append(append([]string{"<s>"}, words...), "</s>")
		for i, x := range seq {
			uni[x]++
			if i > 0 {
				bi[[2]string{seq[i-1], x}]++
				hist[seq[i-1]]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(uni) <= 2 {
		return nil, fmt.Errorf("corpus has no known words")
	}
	// Unigrams: add-one over the vocabulary, so no word has probability 0;
	// <s> only starts sentences and gets the ARPA convention -99.
	var total float64
	for x, c := range uni {
		if x != "<s>" {
			total += c + 1
		}
	}
	p1 := map[string]float64{}
	for x, c := range uni {
		if x != "<s>" {
			p1[x] = (c + 1) / total
		}
	}
	seen := map[string][]string{}
	for k := range bi {
		seen[k[0]] = append(seen[k[0]], k[1])
	}
	p2 := map[[2]string]float64{}
	bow := map[string]float64{}
	for v, ws := range seen {
		h := hist[v]
		lambda := lmDiscount * float64(len(ws)) / h
		var sumP, sumQ float64
		for _, x := range ws {
			p := (bi[[2]string{v, x}]-lmDiscount)/h + lambda*p1[x]
			p2[[2]string{v, x}] = p
			sumP += p
			sumQ += p1[x]
		}
		if sumQ < 1 && sumP < 1 {
			bow[v] = (1 - sumP) / (1 - sumQ)
		} else {
			bow[v] = 1e-6
		}
	}
	vocab := make([]string, 0, len(uni))
	for x := range uni {
		vocab = append(vocab, x)
	}
	sort.Strings(vocab)
	keys := make([][2]string, 0, len(p2))
	for k := range p2 {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "\\data\\\nngram 1=%d\nngram 2=%d\n\n\\1-grams:\n", len(vocab), len(keys))
	for _, x := range vocab {
		lp := -99.0
		if x != "<s>" {
			lp = math.Log10(p1[x])
		}
		if b, ok := bow[x]; ok {
			fmt.Fprintf(bw, "%.5f %s %.5f\n", lp, x, math.Log10(b))
		} else {
			fmt.Fprintf(bw, "%.5f %s\n", lp, x)
		}
	}
	fmt.Fprintf(bw, "\n\\2-grams:\n")
	for _, k := range keys {
		fmt.Fprintf(bw, "%.5f %s %s\n", math.Log10(p2[k]), k[0], k[1])
	}
	fmt.Fprintf(bw, "\n\\end\\\n")
	return vocab, bw.Flush()
}
