package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/sqlite"
)

// runToken prints a speaker token signed by a data dir's embedded issuer.
// The token is the last word printed, so scripts can take it with awk.
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pentecost token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", envOr(getenv, "PENTECOST_DATA_DIR", "./pentecost-data"), "data dir of the server whose issuer signs (env PENTECOST_DATA_DIR)")
	redisURL := fs.String("redis", getenv("REDIS_URL"), "the Redis shared by the nodes, instead of a data dir (env REDIS_URL)")
	user := fs.String("user", "admin", "speaker account the token names")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid, e.g. 30m, 12h")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ttl <= 0 {
		return usageError{"--ttl must be positive"}
	}
	users, key, closeStore, err := openIssuer(ctx, *dataDir, *redisURL)
	if err != nil {
		return err
	}
	defer closeStore()

	u, err := users.FindUserByName(ctx, *user)
	if pentecost.ErrorCode(err) == pentecost.EUSERNOTFOUND {
		return fmt.Errorf("no speaker account %q (see: pentecost users list)", *user)
	} else if err != nil {
		return describe(err)
	}
	token, err := auth.NewEmbedded(key).IssueToken(ctx, u, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Speaker token for %s, valid until %s:\n%s\n", u.Name, time.Now().Add(*ttl).UTC().Format(time.RFC3339), token)
	return nil
}

// openIssuer opens the accounts and signing key of a data dir or, when
// redisURL is set, of the Redis shared by several nodes.
func openIssuer(ctx context.Context, dataDir, redisURL string) (pentecost.UserStore, ed25519.PrivateKey, func(), error) {
	if redisURL != "" {
		db, err := openRedis(redisURL)
		if err != nil {
			return nil, nil, nil, err
		}
		key, err := db.LoadOrCreateSigningKey(ctx)
		if err != nil {
			db.Close()
			return nil, nil, nil, fmt.Errorf("signing key: %w", describe(err))
		}
		return redis.NewUserStore(db), key, func() { db.Close() }, nil
	}
	db, err := openDataDir(dataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(dataDir, signingKeyFile))
	if err != nil {
		db.Close()
		return nil, nil, nil, fmt.Errorf("signing key: %w", err)
	}
	return sqlite.NewUserStore(db), key, func() { db.Close() }, nil
}

// openRedis connects the administration commands to a deployment's Redis.
func openRedis(url string) (*redis.DB, error) {
	if _, err := redis.ParseURL(url); err != nil {
		return nil, usageError{err.Error()}
	}
	db := redis.NewDB(url)
	if err := db.Open(); err != nil {
		return nil, err
	}
	return db, nil
}

// openDataDir opens an existing data dir's database; it refuses to create
// one, so a typo in --data-dir is reported instead of starting afresh.
func openDataDir(dir string) (*sqlite.DB, error) {
	path := filepath.Join(dir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no Pentecost database in %s: start the server once with --data-dir %s, or pass the right --data-dir", dir, dir)
	}
	db := sqlite.NewDB(path)
	if err := db.Open(); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
