package redis

import (
	"context"
	"strconv"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// PublishLost numbers and stores f like Publish but sends it to no
// subscriber, as if its Pub/Sub message had been lost on the way.
func PublishLost(ctx context.Context, b *Broker, key pentecost.StreamKey, f *pentecost.Frame) error {
	return b.publish(ctx, key, f, false)
}

// Unavailable is unavailable, for tests of replies a test server cannot be
// made to give reliably.
func Unavailable(err error) bool { return unavailable(err) }

// ReceiveStale runs a group reader that does not read key's channel over
// the message of frame f and a subscription confirmation, as the goroutine
// of a group closed since (on a cluster, the last stream of a session
// unsubscribed) drains what it had buffered while key is subscribed again.
func ReceiveStale(b *Broker, key pentecost.StreamKey, f *pentecost.Frame) error {
	payload, err := encodeFrame(f)
	if err != nil {
		return err
	}
	channel := b.streamKeys(key)[2]
	msgs := make(chan any, 2)
	msgs <- &goredis.Message{Channel: channel, Payload: strconv.FormatUint(f.Seq, 10) + " " + f.Epoch + " " + string(payload)}
	msgs <- &goredis.Subscription{Kind: "ssubscribe", Channel: channel, Count: 1}
	close(msgs)
	b.receive(&subGroup{key: key.SessionID, done: make(chan struct{})}, msgs)
	return nil
}
