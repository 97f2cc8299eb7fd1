package worker

import (
	"reflect"
	"testing"
	"time"
)

// TestCutter checks where the transcript is cut: sentence ends (not after
// an abbreviation), clauses of interims, a final whole.
func TestCutter(t *testing.T) {
	now := time.Unix(0, 0)
	texts := func(cuts []cut) []string {
		var out []string
		for _, k := range cuts {
			out = append(out, k.text)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		hyps []Hypothesis
		want []string
	}{
		{"FinalSentences", []Hypothesis{{Text: "Good morning. Let us pray.", Final: true}}, []string{"Good morning.", "Let us pray."}},
		{"Abbreviation", []Hypothesis{{Text: "Let us read St. Paul to the Romans.", Final: true}}, []string{"Let us read St. Paul to the Romans."}},
		{"FinalNotCutAtClauses", []Hypothesis{{Text: "When we gather, we remember, and we give thanks", Final: true}},
			[]string{"When we gather, we remember, and we give thanks"}},
		{"InterimCutAtStableClause", []Hypothesis{
			{Text: "When we gather together, we", Stable: len("When we gather together,")},
			{Text: "When we gather together, we remember.", Final: true},
		}, []string{"When we gather together,", "we remember."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c cutter
			var got []string
			for _, h := range tc.hyps {
				cuts, _ := c.next(h, now)
				got = append(got, texts(cuts)...)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("cuts %q, want %q", got, tc.want)
			}
		})
	}
}
