package awsstream_test

import (
	"testing"

	"github.com/pentecost/pentecost/worker/awsstream/awsfake"
	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

// TestStreamingRecognizerSuite runs the shared suite against the fake: two
// partials once audio arrives, the final once the input ends, as Transcribe
// does (fixtures in testdata/flow.json).
func TestStreamingRecognizerSuite(t *testing.T) {
	flow := fixtures(t, "flow.json")
	enginetest.RunStreamingRecognizer(t, func(t *testing.T) (engine.StreamingRecognizer, string) {
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			heard := false
			for range c.Audio() {
				if !heard {
					heard = true
					c.Send(flow[0].Message())
					c.Send(flow[1].Message())
					c.Send(flow[2].Message())
				}
			}
			if heard {
				c.Send(flow[3].Message())
			}
		})
		return r, "en"
	}, make([]int16, engine.SampleRate), "Good morning everyone.")
}
