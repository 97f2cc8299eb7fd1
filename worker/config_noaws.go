//go:build noaws

package worker

import "fmt"

// A binary built with -tags noaws has no AWS engines, and none of the AWS
// SDK: the engine configuration refuses them by name.

type awsConfig struct{}

type awsEngines struct {
	b *builder
	c Config
}

// noAWS is the error for an AWS engine named in a binary without them.
func noAWS(key, engine string) error {
	return fmt.Errorf("engine configuration: %s: the %s engine is not in this binary, which was built with -tags noaws; use a build without that tag (such as the release archives)", key, engine)
}

func (a *awsEngines) translator(key string) (Translator, error) { return nil, noAWS(key, "aws") }

func (a *awsEngines) polly(key, target, voice string) (Synthesizer, error) {
	return nil, noAWS(key, "polly")
}

func (a *awsEngines) transcribe(key, target, code string) (Recognizer, error) {
	return nil, noAWS(key, "transcribe")
}

func (a *awsEngines) transcribeStreaming(key, target, code string) (StreamingRecognizer, error) {
	return nil, noAWS(key, "transcribe-streaming")
}
