package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The offline reference engines run Debian's packages as processes, one per
// utterance: measured on the test speech, starting pocketsphinx costs about
// 0.5 s of its 1-3 s per utterance, apertium about 0.2 s, espeak-ng a few
// milliseconds. Their quality is modest (see docs/translation.md): they exist
// so that a machine without internet can translate at all.

// DefaultProcessTimeout bounds one call to an offline engine when its
// Timeout is zero: about ten times the slowest call measured (pocketsphinx
// with the full dictionary, 3 s), so that a hung engine costs one
// utterance instead of holding up its session for ever.
const DefaultProcessTimeout = 30 * time.Second

// processWaitDelay is how long a call waits, once its engine has been
// killed or has exited, for its output pipes to close (they may be held by
// a process that escaped its process group) before closing them itself.
const processWaitDelay = 500 * time.Millisecond

// Default locations of Debian's pocketsphinx-en-us model.
const (
	DefaultPocketsphinxHMM  = "/usr/share/pocketsphinx/model/en-us/en-us"
	DefaultPocketsphinxLM   = "/usr/share/pocketsphinx/model/en-us/en-us.lm.bin"
	DefaultPocketsphinxDict = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict"
)

// Pocketsphinx recognises English with CMU pocketsphinx_continuous, one
// process per utterance. A domain language model (LM, or Corpus, from which
// Open builds one) narrows it to a vocabulary, which is what makes it usable.
type Pocketsphinx struct {
	// Command is the program to run; default "pocketsphinx_continuous".
	Command string
	// HMM, LM and Dict are the acoustic model directory, the language
	// model and the pronunciation dictionary.
	HMM, LM, Dict string
	// Corpus, if set, is a text file of domain sentences (one a line);
	// Open builds a bigram model of them into Dir and uses it as LM.
	Corpus string
	// Dir holds the generated model and temporary files; default
	// os.TempDir().
	Dir string
	// Timeout bounds one recognition; 0 is DefaultProcessTimeout.
	Timeout time.Duration
	// Truecaser restores capitals to the lower-case hypotheses (apertium
	// needs them: "i want" is not "I want"). Open learns one from Corpus
	// when it is nil; nil capitalises only the first word and "I".
	Truecaser *Truecaser
}

// NewPocketsphinx returns a recogniser with Debian's en-us model.
func NewPocketsphinx() *Pocketsphinx {
	return &Pocketsphinx{Command: "pocketsphinx_continuous", HMM: DefaultPocketsphinxHMM,
		LM: DefaultPocketsphinxLM, Dict: DefaultPocketsphinxDict}
}

// Open checks that the program and model exist and builds the corpus model.
func (p *Pocketsphinx) Open() error {
	if _, err := exec.LookPath(p.Command); err != nil {
		return missing("pocketsphinx", p.Command)
	}
	for _, f := range []string{p.HMM, p.Dict} {
		if _, err := os.Stat(f); err != nil {
			return missing("pocketsphinx-en-us", f)
		}
	}
	if p.Corpus == "" {
		return nil
	}
	dict, err := os.ReadFile(p.Dict)
	if err != nil {
		return missing("pocketsphinx-en-us", p.Dict)
	}
	known := dictWords(dict)
	in, err := os.Open(p.Corpus)
	if err != nil {
		return fmt.Errorf("pocketsphinx corpus: %w", err)
	}
	defer in.Close()
	if p.Truecaser == nil {
		if p.Truecaser, err = LearnTruecaser(in); err != nil {
			return fmt.Errorf("pocketsphinx corpus %s: %w", filepath.Base(p.Corpus), err)
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("pocketsphinx corpus: %w", err)
		}
	}
	var lm bytes.Buffer
	vocab, err := WriteARPA(&lm, in, func(w string) bool { return known[w] })
	if err != nil {
		return fmt.Errorf("pocketsphinx corpus %s: %w", filepath.Base(p.Corpus), err)
	}
	if p.LM, err = writeNamedByContent(p.dir(), "pentecost-lm-", ".arpa", lm.Bytes()); err != nil {
		return err
	}
	// A dictionary of the model's words only: loading the full one
	// (130,000 words) is most of a recognition's time.
	p.Dict, err = writeNamedByContent(p.dir(), "pentecost-dict-", ".dict", pruneDict(dict, vocab))
	return err
}

func (p *Pocketsphinx) dir() string {
	if p.Dir == "" {
		return os.TempDir()
	}
	return p.Dir
}

// Close releases nothing: the generated model files are named by their
// content and left for the next start (or another worker on the machine)
// to reuse, so that a worker killed and restarted over and over leaves one
// pair of files per corpus, not a pair per start.
func (p *Pocketsphinx) Close() error { return nil }

// writeNamedByContent writes data to dir/prefix<hash>suffix unless that file
// already exists, and returns its path. It writes a temporary file and
// renames it, so a reader never sees a half-written model.
func writeNamedByContent(dir, prefix, suffix string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	path := filepath.Join(dir, prefix+hex.EncodeToString(sum[:8])+suffix)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	f, err := os.CreateTemp(dir, prefix+"*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return path, nil
}

// dictWords returns the words of a pronunciation dictionary (lines "word
// PH ON ES", alternatives spelt "word(2)").
func dictWords(dict []byte) map[string]bool {
	known := map[string]bool{}
	for _, line := range strings.Split(string(dict), "\n") {
		if w, _, ok := strings.Cut(line, " "); ok {
			known[baseWord(w)] = true
		}
	}
	return known
}

func baseWord(w string) string {
	if i := strings.IndexByte(w, '('); i > 0 {
		return w[:i]
	}
	return w
}

// pruneDict keeps the dictionary lines of the given words.
func pruneDict(dict []byte, words []string) []byte {
	keep := make(map[string]bool, len(words))
	for _, w := range words {
		keep[w] = true
	}
	var out bytes.Buffer
	for _, line := range strings.Split(string(dict), "\n") {
		if w, _, ok := strings.Cut(line, " "); ok && keep[baseWord(w)] {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// Name implements Recognizer.
func (p *Pocketsphinx) Name() string { return "pocketsphinx" }

// Recognize implements Recognizer: it writes the utterance to a WAV file
// and reads the hypotheses pocketsphinx prints, one line per segment it
// finds, truecased.
func (p *Pocketsphinx) Recognize(ctx context.Context, pcm []int16, lang string) (string, error) {
	f, err := os.CreateTemp(p.Dir, "pentecost-utt-*.wav")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(EncodeWAV(pcm, SampleRate)); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	out, err := run(ctx, p.Timeout, nil, p.Command, "-infile", f.Name(), "-hmm", p.HMM, "-lm", p.LM, "-dict", p.Dict,
		"-samprate", "16000", "-logfn", os.DevNull)
	if err != nil {
		return "", err
	}
	return p.Truecaser.Apply(string(out)), nil
}

// Apertium translates with apertium's rule-based modes, one process per
// call (about 0.2 s).
type Apertium struct {
	// Command is the program; default "apertium".
	Command string
	// Modes maps pairs to apertium mode names, e.g. en-es → "eng-spa".
	Modes map[Pair]string
	// Timeout bounds one translation; 0 is DefaultProcessTimeout.
	Timeout time.Duration
}

// NewApertium returns a translator for the modes of apertium-eng-spa,
// apertium-eng-cat and apertium-en-gl.
func NewApertium() *Apertium {
	return &Apertium{Command: "apertium", Modes: map[Pair]string{
		{"en", "es"}: "eng-spa", {"en", "ca"}: "eng-cat", {"en", "gl"}: "en-gl"}}
}

// Open checks that the program exists.
func (a *Apertium) Open() error {
	if _, err := exec.LookPath(a.Command); err != nil {
		return missing("apertium", a.Command)
	}
	return nil
}

// Name implements Translator.
func (a *Apertium) Name() string { return "apertium" }

// Translate implements Translator. Unknown words pass through unmarked (-u).
func (a *Apertium) Translate(ctx context.Context, text, from, to string) (string, error) {
	mode, ok := a.Modes[Pair{from, to}]
	if !ok {
		return "", fmt.Errorf("apertium: no mode for %s-%s", from, to)
	}
	out, err := run(ctx, a.Timeout, strings.NewReader(text+"\n"), a.Command, "-u", mode)
	if err != nil {
		return "", err
	}
	return strings.Join(strings.Fields(string(out)), " "), nil
}

// Espeak speaks with espeak-ng, resampling its 22050 Hz output to 16 kHz.
type Espeak struct {
	// Command is the program; default "espeak-ng".
	Command string
	// Voices maps languages to espeak-ng voices; a language not in it is
	// used as the voice name.
	Voices map[string]string
	// Speed is in words per minute; 0 is espeak-ng's default.
	Speed int
	// Timeout bounds one synthesis; 0 is DefaultProcessTimeout.
	Timeout time.Duration
}

// NewEspeak returns a synthesiser with espeak-ng's default voices.
func NewEspeak() *Espeak {
	return &Espeak{Command: "espeak-ng", Voices: map[string]string{"en": "en-us"}}
}

// Open checks that the program exists.
func (e *Espeak) Open() error {
	if _, err := exec.LookPath(e.Command); err != nil {
		return missing("espeak-ng", e.Command)
	}
	return nil
}

// Name implements Synthesizer.
func (e *Espeak) Name() string { return "espeak-ng" }

// Synthesize implements Synthesizer. The text goes on standard input, so
// that nothing in it is read as an option.
func (e *Espeak) Synthesize(ctx context.Context, text, lang string) ([]int16, error) {
	voice := e.Voices[lang]
	if voice == "" {
		voice = lang
	}
	args := []string{"-v", voice, "--stdout"}
	if e.Speed > 0 {
		args = append(args, "-s", fmt.Sprint(e.Speed))
	}
	out, err := run(ctx, e.Timeout, strings.NewReader(text), e.Command, args...)
	if err != nil {
		return nil, err
	}
	s, rate, err := DecodeWAV(out)
	if err != nil {
		return nil, fmt.Errorf("espeak-ng: %w", err)
	}
	return Resample(s, rate, SampleRate), nil
}

// ProcessError is an offline engine that failed. Its message gives the
// program and how it ended, never its standard error: engines may echo
// their input there, and the worker logs errors at warn level, where
// transcripts must not appear. Stderr is for the debug log only.
type ProcessError struct {
	// Program is the base name of the program that failed.
	Program string
	// Err is why: its exit status, or the context's error when the call
	// was cancelled or timed out.
	Err error
	// Stderr is the end of its standard error (at most 200 bytes).
	Stderr string
}

func (e *ProcessError) Error() string {
	msg := e.Program + ": " + e.Err.Error()
	if e.Stderr != "" {
		msg += fmt.Sprintf(" (%d bytes of error output, logged at debug level)", len(e.Stderr))
	}
	return msg
}

func (e *ProcessError) Unwrap() error { return e.Err }

// run runs a program and returns its standard output. The program runs in
// a process group of its own (on Linux; elsewhere WaitDelay bounds the wait), all of which is
// killed when ctx ends or the call takes longer than timeout (0:
// DefaultProcessTimeout), so that a call returns promptly even when the
// program's children hold its output open (apertium is a shell pipeline).
func run(ctx context.Context, timeout time.Duration, stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	if timeout <= 0 {
		timeout = DefaultProcessTimeout
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(callCtx, name, args...)
	ownProcessGroup(cmd)
	cmd.WaitDelay = processWaitDelay
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Whatever the program left running in its group goes with it.
	endProcessGroup(cmd)
	if err == nil {
		return stdout.Bytes(), nil
	}
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case callCtx.Err() != nil:
		err = fmt.Errorf("no answer within %v: %w", timeout, callCtx.Err())
	}
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > 200 {
		msg = msg[len(msg)-200:]
	}
	return nil, &ProcessError{Program: filepath.Base(name), Err: err, Stderr: msg}
}

// MissingError reports an engine whose Debian package is not installed.
type MissingError struct{ Package, Path string }

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s not found (Debian package %s; run ./scripts/test or apt-get install %s)", e.Path, e.Package, e.Package)
}

func missing(pkg, path string) error { return &MissingError{Package: pkg, Path: path} }

var (
	_ Recognizer  = (*Pocketsphinx)(nil)
	_ Translator  = (*Apertium)(nil)
	_ Synthesizer = (*Espeak)(nil)
)
