package redis

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// pemTypePrivateKey is the PEM block type of a PKCS#8 private key, as the
// auth package writes it to a file in single-node mode.
const pemTypePrivateKey = "PRIVATE KEY"

// Keys of the shared secrets. They are not session data: no hash tag.
func (db *DB) signingKeyKey() string       { return db.Prefix + "signing-key" }
func (db *DB) workerCredentialKey() string { return db.Prefix + "worker-credential" }

// LoadOrCreateSigningKey returns the embedded issuer's Ed25519 signing key
// shared by every node, creating it on first use. Nodes starting at the same
// moment each propose a key with SET NX and all end up with the one stored
// first, so a token minted by any node is accepted by every node.
// The key never expires; delete it from Redis to rotate it (every token
// issued so far becomes invalid). Errors: EUNAVAILABLE.
func (db *DB) LoadOrCreateSigningKey(ctx context.Context) (ed25519.PrivateKey, error) {
	_, fresh, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("redis: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(fresh)
	if err != nil {
		return nil, fmt.Errorf("redis: encode signing key: %w", err)
	}
	proposal := pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})
	stored, err := db.loadOrStore(ctx, db.signingKeyKey(), proposal)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(stored)
	if block == nil || block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("redis: %s does not hold a PEM %q block", db.signingKeyKey(), pemTypePrivateKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", db.signingKeyKey(), err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("redis: %s holds a %T, want an Ed25519 key", db.signingKeyKey(), parsed)
	}
	return key, nil
}

// LoadOrCreateWorkerCredential returns the translation workers' credential
// shared by every node, creating a random one on first use, the same way as
// the signing key. Nodes configured with explicit credentials need not call
// it. Errors: EUNAVAILABLE.
func (db *DB) LoadOrCreateWorkerCredential(ctx context.Context) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("redis: generate worker credential: %w", err)
	}
	proposal := []byte(base64.RawURLEncoding.EncodeToString(b[:]))
	stored, err := db.loadOrStore(ctx, db.workerCredentialKey(), proposal)
	if err != nil {
		return "", err
	}
	if len(stored) == 0 {
		return "", errors.New("redis: stored worker credential is empty")
	}
	return string(stored), nil
}

// loadOrStore sets key to proposal unless it exists, and returns what the
// key holds afterwards: the proposal, or what another node stored first.
func (db *DB) loadOrStore(ctx context.Context, key string, proposal []byte) ([]byte, error) {
	if err := db.client.SetNX(ctx, key, proposal, 0).Err(); err != nil {
		return nil, db.storeError(ctx, "store secret", err)
	}
	stored, err := db.client.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis: %s vanished right after it was stored", key)
	} else if err != nil {
		return nil, db.storeError(ctx, "load secret", err)
	}
	return stored, nil
}
