//go:build !noaws

package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/transcribe"
	transcribetypes "github.com/aws/aws-sdk-go-v2/service/transcribe/types"
)

// AWSTranscribe is a recogniser using Amazon Transcribe's batch API: each
// utterance is uploaded to S3 as a WAV file, transcribed by a job, polled
// until the job ends, and read back from the transcript file. It is slow
// (a job takes several seconds even for a short utterance) and exists for
// deployments that cannot use Transcribe's streaming API (the
// transcribe-streaming engine, worker/awsstream). The uploaded audio and the job (with its
// transcript) are deleted once the result is read, or when Recognize gives
// up: nothing of the talk is kept.
//
// Credentials come from the SDK's default chain (see AWSOptions). They need
// s3:PutObject, s3:GetObject and s3:DeleteObject on the bucket and prefix,
// and transcribe:StartTranscriptionJob, GetTranscriptionJob and
// DeleteTranscriptionJob.
type AWSTranscribe struct {
	s3 *s3.Client
	tr *transcribe.Client

	// Bucket receives the utterances; it must be in the configured region.
	Bucket string
	// Prefix starts every object key, e.g. "pentecost/".
	Prefix string
	// LanguageCodes maps languages to Transcribe's codes, e.g. en → "en-US".
	LanguageCodes map[string]string
	// PollInterval is the wait between two GetTranscriptionJob calls.
	PollInterval time.Duration
	// Timeout bounds one utterance, upload to transcript.
	Timeout time.Duration
	// Retry governs fetching the transcript file (a presigned HTTPS URL);
	// the SDK's retryer (see LoadAWSConfig) governs the API calls.
	Retry Retry
	// Client fetches the transcript file.
	Client *http.Client
	// Parallel is how many utterances of one session may be transcribed
	// at once (see ConcurrentRecognizer): with jobs slower than speech, one
	// at a time would fall behind and drop utterances.
	Parallel int
}

// DefaultTranscribeLanguages are Transcribe's codes for the languages the
// other engines cover.
var DefaultTranscribeLanguages = map[string]string{"en": "en-US", "es": "es-ES", "ca": "ca-ES", "gl": "gl-ES",
	"fr": "fr-FR", "de": "de-DE", "it": "it-IT", "pt": "pt-BR"}

// NewAWSTranscribe returns an Amazon Transcribe engine that stages audio
// in bucket. With a custom endpoint (cfg.BaseEndpoint, a VPC endpoint or a
// test server) S3 is addressed path-style.
func NewAWSTranscribe(cfg aws.Config, bucket string) *AWSTranscribe {
	pathStyle := cfg.BaseEndpoint != nil
	return &AWSTranscribe{
		s3:            s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }),
		tr:            transcribe.NewFromConfig(cfg),
		Bucket:        bucket,
		Prefix:        "pentecost/",
		LanguageCodes: DefaultTranscribeLanguages,
		PollInterval:  time.Second,
		Timeout:       60 * time.Second,
		Retry:         DefaultRetry,
		Parallel:      4,
	}
}

// Concurrency implements ConcurrentRecognizer.
func (a *AWSTranscribe) Concurrency() int { return a.Parallel }

// Name implements Recognizer.
func (a *AWSTranscribe) Name() string { return "aws-transcribe" }

// Errors of AWSTranscribe that callers may tell apart.
var (
	// ErrTranscribeTimeout reports a job that had not ended within Timeout.
	ErrTranscribeTimeout = errors.New("aws-transcribe: no result within the timeout")
	// ErrTranscribeFailed reports a job that ended FAILED (e.g. audio
	// Transcribe could not read); the reason follows it.
	ErrTranscribeFailed = errors.New("aws-transcribe: job failed")
)

// Recognize implements Recognizer.
func (a *AWSTranscribe) Recognize(ctx context.Context, pcm []int16, lang string) (string, error) {
	code := a.LanguageCodes[lang]
	if code == "" {
		return "", fmt.Errorf("aws-transcribe: no language code for %q", lang)
	}
	if a.Bucket == "" {
		return "", errors.New("aws-transcribe: no bucket configured")
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	// Job names are unique per account and region, and say nothing of the talk.
	job := fmt.Sprintf("pentecost-%d-%s", time.Now().UnixMilli(), hex.EncodeToString(id[:]))
	key := a.Prefix + job + ".wav"

	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	started := false
	defer func() {
		// Clean up even when ctx ended; a job still running cannot be
		// deleted and expires with the account's retention instead.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if started {
			_, _ = a.tr.DeleteTranscriptionJob(cctx, &transcribe.DeleteTranscriptionJobInput{TranscriptionJobName: aws.String(job)})
		}
		_, _ = a.s3.DeleteObject(cctx, &s3.DeleteObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key)})
	}()

	wav := EncodeWAV(pcm, SampleRate)
	if _, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(wav), ContentLength: aws.Int64(int64(len(wav))), ContentType: aws.String("audio/wav")}); err != nil {
		return "", a.fail(ctx, "uploading", err)
	}
	if _, err := a.tr.StartTranscriptionJob(ctx, &transcribe.StartTranscriptionJobInput{
		TranscriptionJobName: aws.String(job),
		LanguageCode:         transcribetypes.LanguageCode(code),
		Media:                &transcribetypes.Media{MediaFileUri: aws.String("s3://" + a.Bucket + "/" + key)},
		MediaFormat:          transcribetypes.MediaFormatWav,
		MediaSampleRateHertz: aws.Int32(SampleRate),
	}); err != nil {
		return "", a.fail(ctx, "starting the job", err)
	}
	started = true

	uri, err := a.wait(ctx, job)
	if err != nil {
		return "", err
	}
	body, err := a.Retry.do(ctx, a.Client, "aws-transcribe transcript", func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	})
	if err != nil {
		return "", a.fail(ctx, "fetching the transcript", err)
	}
	var out struct {
		Results struct {
			Transcripts []struct {
				Transcript string `json:"transcript"`
			} `json:"transcripts"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("aws-transcribe: transcript file: %w", err)
	}
	parts := make([]string, 0, len(out.Results.Transcripts))
	for _, t := range out.Results.Transcripts {
		parts = append(parts, t.Transcript)
	}
	return strings.TrimSpace(strings.Join(parts, " ")), nil
}

// wait polls the job until it ends and returns its transcript's URI.
func (a *AWSTranscribe) wait(ctx context.Context, job string) (string, error) {
	interval := a.PollInterval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", a.fail(ctx, "waiting for the job", ctx.Err())
		case <-t.C:
		}
		out, err := a.tr.GetTranscriptionJob(ctx, &transcribe.GetTranscriptionJobInput{TranscriptionJobName: aws.String(job)})
		if err != nil {
			return "", a.fail(ctx, "polling the job", err)
		}
		j := out.TranscriptionJob
		if j == nil {
			return "", errors.New("aws-transcribe: job missing from the answer")
		}
		switch j.TranscriptionJobStatus {
		case transcribetypes.TranscriptionJobStatusCompleted:
			if j.Transcript == nil || aws.ToString(j.Transcript.TranscriptFileUri) == "" {
				return "", errors.New("aws-transcribe: completed job without a transcript")
			}
			return aws.ToString(j.Transcript.TranscriptFileUri), nil
		case transcribetypes.TranscriptionJobStatusFailed:
			return "", fmt.Errorf("%w: %s", ErrTranscribeFailed, aws.ToString(j.FailureReason))
		}
		t.Reset(interval)
	}
}

// fail names the step that failed, and turns the end of the engine's own
// timeout into ErrTranscribeTimeout.
func (a *AWSTranscribe) fail(ctx context.Context, step string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (%s, while %s)", ErrTranscribeTimeout, a.Timeout, step)
	}
	return fmt.Errorf("aws-transcribe: %s: %w", step, err)
}

var _ ConcurrentRecognizer = (*AWSTranscribe)(nil)
