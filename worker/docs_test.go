package worker_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
)

// TestDocumentedConfigurations parses every engine configuration that
// docs/translation.md shows (fenced or indented blocks with recognize.,
// translate. or synthesize. keys), so that a reader who copies one gets a
// worker that starts, not an "unknown setting" on line 3.
func TestDocumentedConfigurations(t *testing.T) {
	b, err := os.ReadFile("../docs/translation.md")
	if err != nil {
		t.Fatal(err)
	}
	engineKey := regexp.MustCompile(`(?m)^(tier\.\w+\.)?(recognize|translate|synthesize)\.[a-z-]+=`)
	var blocks []string
	var cur []string
	inFence := false
	flush := func() {
		if block := strings.Join(cur, "\n"); engineKey.MatchString(block) {
			blocks = append(blocks, block)
		}
		cur = nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "```"):
			if inFence {
				flush()
			}
			inFence = !inFence
		case inFence:
			cur = append(cur, line)
		case strings.HasPrefix(line, "    "):
			cur = append(cur, strings.TrimPrefix(line, "    "))
		default:
			if len(cur) > 0 {
				flush()
			}
		}
	}
	if len(blocks) < 5 {
		t.Fatalf("found %d configurations in docs/translation.md; the extraction is broken", len(blocks))
	}
	// The files the examples name, as a venue would have them.
	glossary := filepath.Join(t.TempDir(), "glossary.tsv")
	if err := os.WriteFile(glossary, []byte("en-es\tLord\tSeñor\n*-*\tPentecost\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := strings.NewReplacer("/etc/pentecost/sermons.txt", "testdata/sermon-corpus.txt", "/etc/pentecost/glossary.tsv", glossary)
	for i, block := range blocks {
		cfg, err := worker.ParseConfig(strings.NewReader(files.Replace(block)))
		if err != nil {
			t.Errorf("configuration %d of docs/translation.md does not parse: %v\n%s", i+1, err, block)
			continue
		}
		for k, v := range cfg {
			// A comment after a value is part of the value.
			if strings.Contains(v, " #") {
				t.Errorf("configuration %d: %s=%q holds a comment", i+1, k, v)
			}
		}
		eng, tiers, err := cfg.BuildEngines(t.Context(), func(string) string { return "" })
		if err != nil {
			t.Errorf("configuration %d of docs/translation.md builds no engines: %v\n%s", i+1, err, block)
			continue
		}
		eng.Close()
		for _, e := range tiers {
			e.Close()
		}
	}
	t.Logf("%d documented configurations parse", len(blocks))
}
