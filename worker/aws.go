package worker

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/polly"
	pollytypes "github.com/aws/aws-sdk-go-v2/service/polly/types"
	"github.com/aws/aws-sdk-go-v2/service/translate"
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
	return &AWSPolly{c: polly.NewFromConfig(cfg), Voices: DefaultPollyVoices, Engine: "neural"}
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

var (
	_ Translator  = (*AWSTranslate)(nil)
	_ Synthesizer = (*AWSPolly)(nil)
)
