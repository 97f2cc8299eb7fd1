package web

import (
	"encoding/json"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// catalogueIndex is static/i18n/index.json: the catalogues the pages may
// load, by language code.
type catalogueIndex struct {
	Languages map[string]struct {
		Name string `json:"name"`
		Dir  string `json:"dir"`
	} `json:"languages"`
}

var placeholderRE = regexp.MustCompile(`\{(\w+)\}`)

// TestCatalogues checks the interface catalogues a volunteer edits: every
// file is listed in index.json and every listed language has a file, each
// has exactly the keys of en.json with the same placeholders (the admin
// page's, under optionalPrefix, may be left out: they fall back to
// English), and every key the pages use exists.
func TestCatalogues(t *testing.T) {
	fsys := staticFS()
	readJSON := func(name string, v any) {
		t.Helper()
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var index catalogueIndex
	readJSON("i18n/index.json", &index)
	var en map[string]string
	readJSON("i18n/en.json", &en)
	if len(en) == 0 {
		t.Fatal("en.json has no strings")
	}

	jsonFiles, err := fs.Glob(fsys, "i18n/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, f := range jsonFiles {
		if code := strings.TrimSuffix(path.Base(f), ".json"); code != "index" {
			codes = append(codes, code)
		}
	}
	for code := range index.Languages {
		if !slices.Contains(codes, code) {
			t.Errorf("index.json lists %q but i18n/%s.json does not exist", code, code)
		}
	}
	for _, want := range []string{"en", "es", "ca", "gl", "pt", "fr", "de", "it", "zh", "ar", "ko", "ru", "uk", "sw"} {
		if !slices.Contains(codes, want) {
			t.Errorf("no catalogue for %q", want)
		}
	}
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			entry, ok := index.Languages[code]
			if !ok {
				t.Errorf("i18n/%s.json is not listed in index.json", code)
			}
			if entry.Name == "" && ok {
				t.Errorf("index.json gives %q no name", code)
			}
			if entry.Dir != "" && entry.Dir != "ltr" && entry.Dir != "rtl" {
				t.Errorf("index.json: %q has dir %q, want ltr or rtl", code, entry.Dir)
			}
			var cat map[string]string
			readJSON("i18n/"+code+".json", &cat)
			for key, s := range en {
				got, ok := cat[key]
				if !ok {
					if !strings.HasPrefix(key, optionalPrefix) {
						t.Errorf("missing key %q", key)
					}
					continue
				}
				if strings.TrimSpace(got) == "" {
					t.Errorf("%q is empty", key)
				}
				if want, have := placeholders(s), placeholders(got); !slices.Equal(want, have) {
					t.Errorf("%q has placeholders %v, want %v", key, have, want)
				}
			}
			for key := range cat {
				if _, ok := en[key]; !ok {
					t.Errorf("key %q is not in en.json", key)
				}
			}
		})
	}
	if index.Languages["ar"].Dir != "rtl" {
		t.Error(`index.json: ar must have "dir": "rtl"`)
	}

	// Every key the pages ask for is in en.json.
	uses := regexp.MustCompile(`data-i18n="([^"]+)"|\bt\('([^']+)'`)
	for _, name := range []string{"templates/listen.html", "templates/index.html", "templates/admin.html"} {
		b, err := fs.ReadFile(files, name)
		checkKeys(t, name, b, err, uses, en)
	}
	for _, name := range []string{"js/listener.js", "js/landing.js", "js/admin.js"} {
		b, err := fs.ReadFile(fsys, name)
		checkKeys(t, name, b, err, uses, en)
	}
	// The admin page also names keys in tables of its own.
	b, err := fs.ReadFile(fsys, "js/admin.js")
	checkKeys(t, "js/admin.js", b, err, regexp.MustCompile(`'(admin\.[A-Za-z.]+)'()`), en)
}

// optionalPrefix starts the keys a catalogue may leave out: the admin
// page's, which operators read and which fall back to English.
const optionalPrefix = "admin."

func checkKeys(t *testing.T, name string, b []byte, err error, uses *regexp.Regexp, en map[string]string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
		key := m[1] + m[2]
		n++
		if _, ok := en[key]; !ok {
			t.Errorf("%s uses key %q, which en.json lacks", name, key)
		}
	}
	if n == 0 {
		t.Errorf("%s uses no catalogue keys", name)
	}
}

// placeholders returns the sorted {names} in s.
func placeholders(s string) []string {
	var out []string
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}
