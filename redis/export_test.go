package redis

import (
	"context"

	"github.com/pentecost/pentecost"
)

// PublishLost numbers and stores f like Publish but sends it to no
// subscriber, as if its Pub/Sub message had been lost on the way.
func PublishLost(ctx context.Context, b *Broker, key pentecost.StreamKey, f *pentecost.Frame) error {
	return b.publish(ctx, key, f, false)
}
