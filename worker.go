package pentecost

import "context"

// Worker is a translation worker as the server sees it: a machine that
// turns a session's source audio into audio and captions in other languages.
// Workers authenticate with a worker credential, which is not a speaker
// token: a leaked worker secret cannot create or control sessions.
type Worker struct {
	// ID names the credential the worker used (e.g. "worker-1"), never the secret.
	ID string
}

// WorkerVerifier checks a worker's credential.
type WorkerVerifier interface {
	// VerifyWorker returns the worker a credential belongs to.
	// Errors: EAUTHREQUIRED (empty), EAUTHINVALID (anything else).
	VerifyWorker(ctx context.Context, credential string) (*Worker, error)
}
