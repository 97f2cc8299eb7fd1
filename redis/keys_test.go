package redis_test

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"

	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
)

// TestDB_LoadOrCreateSigningKey starts several nodes at once: they all end
// up with one key, which a later start loads.
func TestDB_LoadOrCreateSigningKey(t *testing.T) {
	srv := redistest.Start(t)
	prefix := newPrefix()
	const nodes = 5
	dbs := make([]*redis.DB, nodes)
	for i := range dbs {
		dbs[i] = MustOpenDBPrefix(t, srv, nil, prefix)
	}
	keys := make([]ed25519.PrivateKey, nodes)
	creds := make([]string, nodes)
	errs := make([]error, 2*nodes)
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() { keys[i], errs[i] = db.LoadOrCreateSigningKey(context.Background()) })
		wg.Go(func() { creds[i], errs[nodes+i] = db.LoadOrCreateWorkerCredential(context.Background()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		if !keys[i].Equal(keys[0]) || creds[i] != creds[0] {
			t.Fatalf("node %d has another key or credential", i)
		}
	}
	if len(creds[0]) < 40 {
		t.Fatalf("worker credential %d characters long", len(creds[0]))
	}

	later := MustOpenDBPrefix(t, srv, nil, prefix)
	key, err := later.LoadOrCreateSigningKey(context.Background())
	if err != nil || !key.Equal(keys[0]) {
		t.Fatalf("a later node loads %v, %v; want the shared key", key, err)
	}
	// Another deployment on the same Redis (another prefix) has its own.
	own, err := MustOpenDB(t, srv, nil).LoadOrCreateSigningKey(context.Background())
	if err != nil || own.Equal(keys[0]) {
		t.Fatalf("another prefix got %v, %v; want a key of its own", own, err)
	}
}

func TestDB_LoadOrCreateSigningKey_ErrCorrupt(t *testing.T) {
	srv := redistest.Start(t)
	db := MustOpenDB(t, srv, nil)
	if err := db.Client().Set(context.Background(), db.Prefix+"signing-key", "not a key", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.LoadOrCreateSigningKey(context.Background()); err == nil {
		t.Fatal("loaded a corrupt key")
	}
}
