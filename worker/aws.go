//go:build !noaws

package worker

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/polly"
	pollytypes "github.com/aws/aws-sdk-go-v2/service/polly/types"
	"github.com/aws/aws-sdk-go-v2/service/translate"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pentecost/pentecost/worker/engine"
)

// AWSOptions configure the AWS engines. Credentials come from the SDK's
// default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and
// the shared files, or the instance's role.
type AWSOptions struct {
	// Region, e.g. "eu-west-1"; empty: AWS_REGION.
	Region string
	// Endpoint replaces the services' endpoints (a VPC endpoint, or a
	// test server).
	Endpoint string
	// Retry bounds attempts, the time of each and the backoff; the SDK
	// retries throttling, 5xx and timeouts.
	Retry Retry
}

// LoadAWSConfig returns the SDK configuration the AWS engines use.
func LoadAWSConfig(ctx context.Context, o AWSOptions) (aws.Config, error) {
	r := o.Retry
	if r.Attempts == 0 {
		r = DefaultRetry
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = r.Attempts
				so.MaxBackoff = r.MaxBackoff
				so.Backoff = retry.NewExponentialJitterBackoff(r.MaxBackoff)
				// Throttling is the normal state of a busy account: do not
				// let a burst of it stop retries altogether.
				so.RateLimiter = noRateLimit{}
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(o.Endpoint))
	}
	if r.Timeout > 0 {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(r.Timeout)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("aws: no region (set aws.region or AWS_REGION)")
	}
	return cfg, nil
}

type noRateLimit struct{}

func (noRateLimit) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (noRateLimit) AddTokens(uint) error { return nil }

// AWSTranslate is a translator using Amazon Translate.
type AWSTranslate struct{ c *translate.Client }

// NewAWSTranslate returns an Amazon Translate engine.
func NewAWSTranslate(cfg aws.Config) *AWSTranslate {
	return &AWSTranslate{c: translate.NewFromConfig(cfg)}
}

// Name implements Translator.
func (a *AWSTranslate) Name() string { return "aws-translate" }

// Translate implements Translator.
func (a *AWSTranslate) Translate(ctx context.Context, text, from, to string) (string, error) {
	out, err := a.c.TranslateText(ctx, &translate.TranslateTextInput{Text: aws.String(text),
		SourceLanguageCode: aws.String(from), TargetLanguageCode: aws.String(to)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.TranslatedText), nil
}

// AWSPolly is a synthesiser using Amazon Polly, asking for 16 kHz PCM so
// that nothing needs resampling.
type AWSPolly struct {
	c *polly.Client
	// Voices maps languages to Polly voice IDs, e.g. es → "Lucia".
	Voices map[string]string
	// Engine is "standard" or "neural".
	Engine string
}

// DefaultPollyVoices are voices for the languages the offline engines cover.
var DefaultPollyVoices = map[string]string{"en": "Joanna", "es": "Lucia", "ca": "Arlet", "gl": "Lucia", "fr": "Lea", "de": "Vicki", "it": "Bianca", "pt": "Ines"}

// NewAWSPolly returns an Amazon Polly engine with the neural voices.
func NewAWSPolly(cfg aws.Config) *AWSPolly {
	c := polly.NewFromConfig(cfg, func(o *polly.Options) { o.HTTPClient = ownBodyClient{o.HTTPClient} })
	return &AWSPolly{c: c, Voices: DefaultPollyVoices, Engine: "neural"}
}

// Name implements Synthesizer.
func (a *AWSPolly) Name() string { return "aws-polly" }

// Synthesize implements Synthesizer.
func (a *AWSPolly) Synthesize(ctx context.Context, text, lang string) ([]int16, error) {
	voice := a.Voices[lang]
	if voice == "" {
		return nil, fmt.Errorf("aws-polly: no voice for %q", lang)
	}
	out, err := a.c.SynthesizeSpeech(ctx, &polly.SynthesizeSpeechInput{Text: aws.String(text),
		OutputFormat: pollytypes.OutputFormatPcm, SampleRate: aws.String("16000"),
		VoiceId: pollytypes.VoiceId(voice), Engine: pollytypes.Engine(a.Engine)})
	if err != nil {
		return nil, err
	}
	defer out.AudioStream.Close()
	b, err := io.ReadAll(io.LimitReader(out.AudioStream, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("aws-polly: %w", err)
	}
	return PCM(b), nil
}

// pollyChunk is how much audio SynthesizeStream hands on at once: 100 ms
// of 16 kHz 16-bit PCM.
const pollyChunk = SampleRate / 10 * 2

// SynthesizeStream implements StreamingSynthesizer: it asks for 16 kHz PCM
// and emits every 100 ms of it as the body arrives, so the first words play
// while Polly still speaks the rest. With a known rate or loudness the text
// goes as SSML in <prosody rate="N%" volume="±NdB">: standard, neural,
// long-form and generative voices all take both attributes (only pitch is
// refused by the non-standard ones), and the whole text is one prosody
// element, as generative voices require.
func (a *AWSPolly) SynthesizeStream(ctx context.Context, text, lang string, p Prosody, emit func(pcm []int16) error) error {
	voice := a.Voices[lang]
	if voice == "" {
		return &engine.Error{Engine: a.Name(), Code: engine.ErrUnsupported, Err: fmt.Errorf("no voice for %q", lang)}
	}
	in := &polly.SynthesizeSpeechInput{Text: aws.String(text), TextType: pollytypes.TextTypeText,
		OutputFormat: pollytypes.OutputFormatPcm, SampleRate: aws.String("16000"),
		VoiceId: pollytypes.VoiceId(voice), Engine: pollytypes.Engine(a.Engine)}
	if ssml, ok := PollySSML(text, p); ok {
		in.Text, in.TextType = aws.String(ssml), pollytypes.TextTypeSsml
	}
	out, err := a.c.SynthesizeSpeech(ctx, in)
	if err != nil {
		return awsError(ctx, a.Name(), err)
	}
	defer out.AudioStream.Close()
	buf := make([]byte, pollyChunk)
	for {
		n, rerr := io.ReadFull(out.AudioStream, buf)
		if ctx.Err() != nil {
			// The body may still hold audio read before the end: drop it.
			return awsError(ctx, a.Name(), ctx.Err())
		}
		if whole := n &^ 1; whole > 0 {
			if err := emit(PCM(buf[:whole])); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return awsError(ctx, a.Name(), rerr)
		}
	}
}

// PollySSML wraps text in <speak><prosody> with p's rate (as a percentage
// of the voice's own, within Polly's 20–200 %) and loudness (in dB, kept
// within ±6 dB, twice or half the voice's level); ok is false when p says
// nothing and plain text serves.
func PollySSML(text string, p Prosody) (ssml string, ok bool) {
	var attrs []string
	if p.Rate > 0 && !math.IsNaN(p.Rate) {
		if r := math.Round(min(max(p.Rate, 0.2), 2) * 100); r != 100 {
			attrs = append(attrs, fmt.Sprintf(`rate="%d%%"`, int(r)))
		}
	}
	if p.Loudness != 0 && !math.IsNaN(p.Loudness) {
		if v := math.Round(min(max(p.Loudness, -6), 6)); v != 0 {
			attrs = append(attrs, fmt.Sprintf(`volume="%+ddB"`, int(v)))
		}
	}
	if len(attrs) == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString("<speak><prosody " + strings.Join(attrs, " ") + ">")
	xml.EscapeText(&b, []byte(text))
	b.WriteString("</prosody></speak>")
	return b.String(), true
}

// awsError gives an AWS SDK error an engine error code.
func awsError(ctx context.Context, name string, err error) error {
	if ctx.Err() != nil {
		return &engine.Error{Engine: name, Code: contextCode(ctx.Err()), Err: err}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "TooManyRequestsException", "LimitExceededException", "ServiceQuotaExceededException":
			return &engine.Error{Engine: name, Code: engine.ErrThrottled, Err: err}
		case "LanguageNotSupportedException", "UnsupportedLanguagePairException", "EngineNotSupportedException":
			return &engine.Error{Engine: name, Code: engine.ErrUnsupported, Err: err}
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return &engine.Error{Engine: name, Code: engine.StatusCode(re.HTTPStatusCode()), Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: err}
	}
	return &engine.Error{Engine: name, Code: engine.ErrUnavailable, Err: err}
}

var (
	_ Translator           = (*AWSTranslate)(nil)
	_ Synthesizer          = (*AWSPolly)(nil)
	_ StreamingSynthesizer = (*AWSPolly)(nil)
)

// ownBodyClient hands net/http a request body of its own. smithy-go closes
// the request body as soon as the response headers arrive, while net/http
// may still read it once more to check its length; a close at that moment
// makes the transport close the connection under the response being read
// ("use of closed network connection", seen under load against a local
// Polly). Polly's requests are small JSON, so a copy costs nothing.
type ownBodyClient struct{ c aws.HTTPClient }

func (o ownBodyClient) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return o.c.Do(r)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	return o.c.Do(r)
}
