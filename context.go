package pentecost

import "context"

type correlationIDContextKey struct{}

// NewContextWithCorrelationID returns a copy of ctx carrying the correlation
// ID of the request it serves, so that every layer can put it in its logs.
func NewContextWithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationIDContextKey{}, id)
}

// CorrelationIDFromContext returns the correlation ID in ctx, or "".
func CorrelationIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(correlationIDContextKey{}).(string)
	return id
}
