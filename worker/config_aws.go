//go:build !noaws

package worker

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming"

	"github.com/pentecost/pentecost/worker/awsstream"
)

// The AWS engines (aws, polly, transcribe, transcribe-streaming) are built
// here, apart from config.go, so that a binary built with -tags noaws
// leaves the AWS SDK out (config_noaws.go).

// awsConfig is the SDK configuration every tier's AWS engines share,
// loaded once when the first of them is configured.
type awsConfig struct{ cfg *aws.Config }

func (b *builder) awsConfig() (aws.Config, error) {
	if b.awsC.cfg == nil {
		cfg, err := LoadAWSConfig(b.ctx, AWSOptions{Region: b.base["aws.region"], Endpoint: b.base["aws.endpoint"]})
		if err != nil {
			return aws.Config{}, err
		}
		b.awsC.cfg = &cfg
	}
	return *b.awsC.cfg, nil
}

// awsEngines builds one tier's AWS engines, each once. key arguments are
// the configuration key being built, for messages.
type awsEngines struct {
	b *builder
	c Config

	translate *AWSTranslate
	speech    *AWSPolly
	batch     *AWSTranscribe
	streaming *awsstream.Recognizer
}

// clients makes Translate and Polly, which share one configuration.
func (a *awsEngines) clients() error {
	if a.translate != nil {
		return nil
	}
	cfg, err := a.b.awsConfig()
	if err != nil {
		return err
	}
	a.translate, a.speech = NewAWSTranslate(cfg), NewAWSPolly(cfg)
	if v := a.c["polly.engine"]; v != "" {
		a.speech.Engine = v
	}
	return nil
}

func (a *awsEngines) translator(key string) (Translator, error) {
	if err := a.clients(); err != nil {
		return nil, err
	}
	return a.translate, nil
}

func (a *awsEngines) polly(key, target, voice string) (Synthesizer, error) {
	if err := a.clients(); err != nil {
		return nil, err
	}
	if voice != "" {
		a.speech.Voices = cloneWith(a.speech.Voices, target, voice)
	}
	return a.speech, nil
}

func (a *awsEngines) transcribe(key, target, code string) (Recognizer, error) {
	c := a.c
	if a.batch == nil {
		if c["transcribe.bucket"] == "" {
			return nil, fmt.Errorf("engine configuration: transcribe.bucket is required for the transcribe engine")
		}
		cfg, err := a.b.awsConfig()
		if err != nil {
			return nil, err
		}
		a.batch = NewAWSTranscribe(cfg, c["transcribe.bucket"])
		if v, ok := c["transcribe.prefix"]; ok {
			a.batch.Prefix = v
		}
		for k, d := range map[string]*time.Duration{"transcribe.poll_ms": &a.batch.PollInterval, "transcribe.timeout_seconds": &a.batch.Timeout} {
			if c[k] == "" {
				continue
			}
			n, err := strconv.Atoi(c[k])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("engine configuration: %s must be a positive whole number", k)
			}
			*d = time.Duration(n) * time.Millisecond
			if k == "transcribe.timeout_seconds" {
				*d = time.Duration(n) * time.Second
			}
		}
	}
	if code != "" {
		a.batch.LanguageCodes = cloneWith(a.batch.LanguageCodes, target, code)
	}
	if a.batch.LanguageCodes[target] == "" {
		return nil, fmt.Errorf("engine configuration: %s: give the Transcribe language code, e.g. transcribe:en-GB", key)
	}
	return a.batch, nil
}

func (a *awsEngines) transcribeStreaming(key, target, code string) (StreamingRecognizer, error) {
	if a.streaming == nil {
		cfg, err := a.b.awsConfig()
		if err != nil {
			return nil, err
		}
		var opts []func(*transcribestreaming.Options)
		if ep := a.c["transcribe.streaming_endpoint"]; ep != "" {
			opts = append(opts, func(o *transcribestreaming.Options) { o.BaseEndpoint = aws.String(ep) })
		}
		a.streaming = awsstream.New(cfg, opts...)
	}
	if code != "" {
		a.streaming.LanguageCodes = cloneWith(a.streaming.LanguageCodes, target, code)
	}
	if a.streaming.LanguageCode(target) == "" {
		return nil, fmt.Errorf("engine configuration: %s: give the Transcribe language code, e.g. transcribe-streaming:en-GB", key)
	}
	return a.streaming, nil
}
