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

var tokenCommand = &command{
	Name: "token", Args: "[flags]",
	Summary: "Print a speaker token signed by a data dir's issuer (or a shared Redis's).",
	Details: "The token is the last word printed, so scripts can take it with awk.",
	Env:     map[string]string{"data-dir": "PENTECOST_DATA_DIR", "redis": "REDIS_URL"},
}

// runToken prints a speaker token signed by a data dir's embedded issuer.
// The token is the last word printed, so scripts can take it with awk.
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pentecost token", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./pentecost-data", "the server's data `DIR`, whose issuer signs")
	redisURL := fs.String("redis", "", "`URL` of the Redis shared by the nodes, instead of a data dir")
	user := fs.String("user", "admin", "`NAME` of the speaker account the token is for")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid, e.g. 30m, 12h")
	if err := tokenCommand.parse(fs, args, getenv, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
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
