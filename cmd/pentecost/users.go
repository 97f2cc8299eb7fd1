package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/sqlite"
)

var usersCommand = &command{
	Name: "users", Args: "list|add|passwd|role|remove [flags] [NAME] [ROLE]",
	Summary: "Manage the accounts of a data dir, or of the Redis several nodes share.",
	Details: `  pentecost users list   [--data-dir DIR | --redis URL]
  pentecost users add    [--data-dir DIR | --redis URL] [--password-stdin] [--role admin|speaker] NAME
  pentecost users passwd [--data-dir DIR | --redis URL] [--password-stdin] NAME
  pentecost users role   [--data-dir DIR | --redis URL] NAME admin|speaker
  pentecost users remove [--data-dir DIR | --redis URL] NAME

Without --password-stdin a random password is generated and printed once.
--role (default speaker): an admin may also use the admin page (/admin):
manage accounts and end anyone's session. A role change counts at the
account's next request. The last admin cannot be removed or made a speaker.
passwd and remove sign the account out: tokens issued before are refused at
once, and its live broadcasts are closed within SPEAKER_ACCOUNT_CHECK_SECONDS.`,
	Env: map[string]string{"data-dir": "PENTECOST_DATA_DIR", "redis": "REDIS_URL"},
}

// usersFlags defines the flags of every users subcommand.
func usersFlags() (fs *flag.FlagSet, dataDir, redisURL *string, passwordStdin *bool, role *string) {
	fs = flag.NewFlagSet("pentecost users", flag.ContinueOnError)
	dataDir = fs.String("data-dir", "./pentecost-data", "the server's data `DIR`")
	redisURL = fs.String("redis", "", "`URL` of the Redis shared by the nodes, instead of a data dir")
	passwordStdin = fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	role = fs.String("role", string(pentecost.RoleSpeaker), "with add: the new account's `ROLE`, admin or speaker")
	return fs, dataDir, redisURL, passwordStdin, role
}

// runUsers manages the embedded speaker accounts of a data dir.
func runUsers(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, dataDir, redisURL, passwordStdin, roleFlag := usersFlags()
	if len(args) == 0 {
		printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
		return usageError{"missing users subcommand"}
	}
	sub := args[0]
	switch sub {
	case "list", "add", "passwd", "role", "remove":
	case "-h", "-help", "--help", "help":
		printHelp(stdout, usersCommand, usersCommand.flagDocs(fs))
		return flag.ErrHelp
	default:
		printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
		return usageError{fmt.Sprintf("unknown users subcommand %q", sub)}
	}
	if err := usersCommand.parse(fs, args[1:], getenv, stdout, stderr); err != nil {
		return err
	}
	name := fs.Arg(0)
	if sub == "list" && fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	role := pentecost.Role(*roleFlag)
	roleSet := false
	fs.Visit(func(f *flag.Flag) { roleSet = roleSet || f.Name == "role" })
	switch {
	case roleSet && sub != "add":
		printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
		return usageError{"--role goes with add; to change a role: pentecost users role NAME admin|speaker"}
	case sub == "role":
		if fs.NArg() != 2 {
			printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
			return usageError{"give an account name and a role"}
		}
		role = pentecost.Role(fs.Arg(1))
	case sub != "list" && (name == "" || fs.NArg() > 1):
		printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
		return usageError{"give exactly one account name"}
	}
	if !role.Valid() {
		printHelp(stderr, usersCommand, usersCommand.flagDocs(fs))
		return usageError{fmt.Sprintf("unknown role %q: admin or speaker", role)}
	}
	store, closeStore, err := openUserStore(sub == "add", *dataDir, *redisURL)
	if err != nil {
		return err
	}
	defer closeStore()
	accounts := auth.NewAccounts(store)

	switch sub {
	case "list":
		users, err := accounts.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, u.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "role":
		if err := accounts.SetRole(ctx, name, role); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "%s is now %s %s.\n", name, article(role), role)
		return nil
	case "add", "passwd":
		password, generated, err := readPassword(*passwordStdin, stdin)
		if err != nil {
			return err
		}
		if sub == "add" {
			_, err = accounts.AddWithRole(ctx, name, password, role)
		} else {
			err = accounts.SetPassword(ctx, name, password)
		}
		if err != nil {
			return describe(err)
		}
		if generated {
			fmt.Fprintf(stdout, "Password for %s (shown only this once): %s\n", name, password)
		} else {
			fmt.Fprintf(stdout, "Password for %s set.\n", name)
		}
		return nil
	default: // remove
		if err := accounts.Remove(ctx, name); err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "Removed %s.\n", name)
		return nil
	}
}

// openUserStore opens the accounts of a data dir (created when create is
// set: adding may come before the first serve) or of a Redis.
func openUserStore(create bool, dataDir, redisURL string) (pentecost.UserStore, func(), error) {
	if redisURL != "" {
		db, err := openRedis(redisURL)
		if err != nil {
			return nil, nil, err
		}
		return redis.NewUserStore(db), func() { db.Close() }, nil
	}
	var db *sqlite.DB
	var err error
	if create {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, nil, err
		}
		db = sqlite.NewDB(dataDirDB(dataDir))
		err = db.Open()
	} else {
		db, err = openDataDir(dataDir)
	}
	if err != nil {
		return nil, nil, err
	}
	return sqlite.NewUserStore(db), func() { db.Close() }, nil
}

// readPassword takes the first line of stdin, or generates a password.
func readPassword(fromStdin bool, stdin io.Reader) (password string, generated bool, err error) {
	if !fromStdin {
		return auth.GeneratePassword(), true, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", false, err
	}
	return strings.TrimRight(line, "\r\n"), false, nil
}

// article is "an" before "admin", "a" before "speaker".
func article(r pentecost.Role) string {
	if r == pentecost.RoleAdmin {
		return "an"
	}
	return "a"
}

func dataDirDB(dir string) string { return filepath.Join(dir, dbFile) }

// describe turns an application error into its message for a person at a
// terminal; internal errors keep their detail, which only the operator sees.
func describe(err error) error {
	if code := pentecost.ErrorCode(err); code != pentecost.EINTERNAL {
		return errors.New(pentecost.ErrorMessage(err))
	}
	return err
}
