package pentecost

import "context"

// FrameHandler receives a stream's frames in Seq order. It is called on the
// publisher's or the subscription's goroutine and must not block: it should
// only queue the frame for its connections.
type FrameHandler func(f *Frame)

// Broker moves frames from the node where they are produced to every node
// with receivers, numbers them per stream and keeps a short history so that
// clients can resume. The in-memory broker serves one node; a shared broker
// (e.g. Redis) has each node subscribe only to the streams it has receivers
// for.
type Broker interface {
	// Publish appends f to the stream key: it sets f.Seq (the next number),
	// f.Epoch and f.Time if zero, keeps f in the history and hands it to
	// every subscription of the stream, in Seq order.
	// Errors: EVALIDATIONFIELD (nil frame or empty session), EUNAVAILABLE.
	Publish(ctx context.Context, key StreamKey, f *Frame) error

	// Subscribe has h receive every frame published to key from now on,
	// until the returned unsubscribe function is called (it is idempotent).
	// A node subscribes once per stream and fans out itself.
	// Errors: EUNAVAILABLE.
	Subscribe(ctx context.Context, key StreamKey, h FrameHandler) (unsubscribe func(), err error)

	// History returns the frames of key with Seq > since that are still
	// held, oldest first, and the stream's position. When since+1 < First
	// frames were lost; a caller compares epochs to know whether since
	// applies at all.
	// Errors: EUNAVAILABLE.
	History(ctx context.Context, key StreamKey, since uint64) ([]*Frame, StreamPosition, error)

	// Position returns the stream's epoch and sequence bounds.
	// Errors: EUNAVAILABLE.
	Position(ctx context.Context, key StreamKey) (StreamPosition, error)

	// DropSession forgets the history of every stream of a session (it
	// ended). Subscriptions stay until unsubscribed. Errors: EUNAVAILABLE.
	DropSession(ctx context.Context, sessionID string) error
}
