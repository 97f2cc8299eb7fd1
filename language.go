package pentecost

import (
	"sort"
	"strings"
)

// Language is a language a session can be spoken or heard in, named in
// English and in itself so that pickers can show "Español", not "Spanish".
type Language struct {
	Code       string `json:"code"` // ISO 639-1
	Name       string `json:"name"`
	NativeName string `json:"nativeName"`
}

// languages is the registry. Every entry is an ISO 639-1 code; a well-formed
// code missing from here is UNSUPPORTED_LANGUAGE rather than INVALID_LANGUAGE.
var languages = []Language{
	{"af", "Afrikaans", "Afrikaans"},
	{"am", "Amharic", "አማርኛ"},
	{"ar", "Arabic", "العربية"},
	{"az", "Azerbaijani", "Azərbaycan dili"},
	{"be", "Belarusian", "Беларуская"},
	{"bg", "Bulgarian", "Български"},
	{"bn", "Bengali", "বাংলা"},
	{"bs", "Bosnian", "Bosanski"},
	{"ca", "Catalan", "Català"},
	{"cs", "Czech", "Čeština"},
	{"cy", "Welsh", "Cymraeg"},
	{"da", "Danish", "Dansk"},
	{"de", "German", "Deutsch"},
	{"el", "Greek", "Ελληνικά"},
	{"en", "English", "English"},
	{"eo", "Esperanto", "Esperanto"},
	{"es", "Spanish", "Español"},
	{"et", "Estonian", "Eesti"},
	{"eu", "Basque", "Euskara"},
	{"fa", "Persian", "فارسی"},
	{"fi", "Finnish", "Suomi"},
	{"fr", "French", "Français"},
	{"ga", "Irish", "Gaeilge"},
	{"gl", "Galician", "Galego"},
	{"gu", "Gujarati", "ગુજરાતી"},
	{"ha", "Hausa", "Hausa"},
	{"he", "Hebrew", "עברית"},
	{"hi", "Hindi", "हिन्दी"},
	{"hr", "Croatian", "Hrvatski"},
	{"ht", "Haitian Creole", "Kreyòl ayisyen"},
	{"hu", "Hungarian", "Magyar"},
	{"hy", "Armenian", "Հայերեն"},
	{"id", "Indonesian", "Bahasa Indonesia"},
	{"ig", "Igbo", "Asụsụ Igbo"},
	{"is", "Icelandic", "Íslenska"},
	{"it", "Italian", "Italiano"},
	{"ja", "Japanese", "日本語"},
	{"ka", "Georgian", "ქართული"},
	{"kk", "Kazakh", "Қазақ тілі"},
	{"km", "Khmer", "ខ្មែរ"},
	{"kn", "Kannada", "ಕನ್ನಡ"},
	{"ko", "Korean", "한국어"},
	{"la", "Latin", "Latina"},
	{"lt", "Lithuanian", "Lietuvių"},
	{"lv", "Latvian", "Latviešu"},
	{"mg", "Malagasy", "Malagasy"},
	{"mk", "Macedonian", "Македонски"},
	{"ml", "Malayalam", "മലയാളം"},
	{"mn", "Mongolian", "Монгол"},
	{"mr", "Marathi", "मराठी"},
	{"ms", "Malay", "Bahasa Melayu"},
	{"mt", "Maltese", "Malti"},
	{"my", "Burmese", "မြန်မာ"},
	{"ne", "Nepali", "नेपाली"},
	{"nl", "Dutch", "Nederlands"},
	{"no", "Norwegian", "Norsk"},
	{"ny", "Chichewa", "Chichewa"},
	{"pa", "Punjabi", "ਪੰਜਾਬੀ"},
	{"pl", "Polish", "Polski"},
	{"ps", "Pashto", "پښتو"},
	{"pt", "Portuguese", "Português"},
	{"ro", "Romanian", "Română"},
	{"ru", "Russian", "Русский"},
	{"rw", "Kinyarwanda", "Ikinyarwanda"},
	{"si", "Sinhala", "සිංහල"},
	{"sk", "Slovak", "Slovenčina"},
	{"sl", "Slovenian", "Slovenščina"},
	{"sm", "Samoan", "Gagana Sāmoa"},
	{"sn", "Shona", "chiShona"},
	{"so", "Somali", "Soomaali"},
	{"sq", "Albanian", "Shqip"},
	{"sr", "Serbian", "Српски"},
	{"sv", "Swedish", "Svenska"},
	{"sw", "Swahili", "Kiswahili"},
	{"ta", "Tamil", "தமிழ்"},
	{"te", "Telugu", "తెలుగు"},
	{"tg", "Tajik", "Тоҷикӣ"},
	{"th", "Thai", "ไทย"},
	{"tl", "Tagalog", "Tagalog"},
	{"to", "Tongan", "Lea faka-Tonga"},
	{"tr", "Turkish", "Türkçe"},
	{"uk", "Ukrainian", "Українська"},
	{"ur", "Urdu", "اردو"},
	{"uz", "Uzbek", "Oʻzbek"},
	{"vi", "Vietnamese", "Tiếng Việt"},
	{"xh", "Xhosa", "isiXhosa"},
	{"yo", "Yoruba", "Yorùbá"},
	{"zh", "Chinese", "中文"},
	{"zu", "Zulu", "isiZulu"},
}

var languageByCode = func() map[string]Language {
	m := make(map[string]Language, len(languages))
	for _, l := range languages {
		m[l.Code] = l
	}
	return m
}()

// Languages returns every supported language, ordered by code.
func Languages() []Language {
	out := append([]Language(nil), languages...)
	sort.Slice(out, func(i, j int) bool { return out[i].Code < out[j].Code })
	return out
}

// LookupLanguage returns the language with the given ISO 639-1 code.
func LookupLanguage(code string) (Language, bool) {
	l, ok := languageByCode[code]
	return l, ok
}

// ValidateLanguage checks a language code typed or sent by a client and
// returns it normalised to lower case. Errors: EINVALIDLANGUAGE when it is
// not two letters, EUNSUPPORTEDLANG when it is not in the registry.
func ValidateLanguage(code string) (string, error) {
	c := strings.ToLower(strings.TrimSpace(code))
	if len(c) != 2 || c[0] < 'a' || c[0] > 'z' || c[1] < 'a' || c[1] > 'z' {
		return "", &Error{Code: EINVALIDLANGUAGE, Message: "Language must be a two-letter ISO 639-1 code.", Details: map[string]string{"language": truncate(code, 16)}}
	}
	if _, ok := languageByCode[c]; !ok {
		return "", &Error{Code: EUNSUPPORTEDLANG, Message: "Language is not supported.", Details: map[string]string{"language": c}}
	}
	return c, nil
}

// truncate keeps echoed client input short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
