package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"regexp"

	"github.com/pentecost/pentecost"
)

// userNameRe is what an embedded account name may look like. Names are
// case-sensitive: "Alice" and "alice" are two accounts.
var userNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

// UserStore keeps embedded speaker accounts. Password hashes are stored as
// given; hashing is the auth package's job.
type UserStore struct {
	db *DB
}

// NewUserStore returns a UserStore on db.
func NewUserStore(db *DB) *UserStore {
	return &UserStore{db: db}
}

// CreateUser stores a new account named u.Name and fills in u.ID, u.Issuer,
// u.CreatedAt and u.PasswordChangedAt (both now). An empty password hash is
// refused, so that no account can exist without a password.
func (s *UserStore) CreateUser(ctx context.Context, u *pentecost.User) error {
	if !userNameRe.MatchString(u.Name) {
		return fieldError("name", "Name must be 1 to 64 letters, digits, dots, underscores or hyphens.")
	}
	if u.PasswordHash == "" {
		return fieldError("password", "Password is required.")
	}
	role, err := storedRole(u.Role)
	if err != nil {
		return err
	}
	var created pentecost.User
	err = s.db.update(ctx, "create user", func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, role, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)`,
			u.Name, u.PasswordHash, role, tx.now.UnixMilli(), tx.now.UnixMilli())
		if constraint(err) {
			return pentecost.Errorf(pentecost.ECONFLICT, "A user with that name already exists.")
		} else if err != nil {
			return err
		}
		created = pentecost.User{ID: u.Name, Name: u.Name, Issuer: pentecost.EmbeddedIssuer, Role: role,
			PasswordHash: u.PasswordHash, CreatedAt: tx.now, PasswordChangedAt: tx.now}
		return nil
	})
	if err != nil {
		return err
	}
	*u = created
	return nil
}

// FindUserByName returns the account with exactly this name.
func (s *UserStore) FindUserByName(ctx context.Context, name string) (*pentecost.User, error) {
	if !userNameRe.MatchString(name) {
		return nil, userNotFound() // such a name cannot have been stored
	}
	var u *pentecost.User
	err := s.db.view(ctx, "find user", func(tx *Tx) (err error) {
		u, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return userNotFound()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// FindUsers returns every account, ordered by name.
func (s *UserStore) FindUsers(ctx context.Context) ([]*pentecost.User, error) {
	users := []*pentecost.User{}
	err := s.db.view(ctx, "find users", func(tx *Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		users = users[:0] // a retried transaction starts over
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return err
			}
			users = append(users, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}

// UpdateUserPassword replaces an account's password hash and sets its
// PasswordChangedAt to now.
func (s *UserStore) UpdateUserPassword(ctx context.Context, name, passwordHash string) error {
	if passwordHash == "" {
		return fieldError("password", "Password is required.")
	}
	return s.db.update(ctx, "update user password", func(tx *Tx) error {
		return execOne(ctx, tx, `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?`,
			passwordHash, tx.now.UnixMilli(), name)
	})
}

// UpdateUserRole changes an account's role, unless that would leave no admin.
func (s *UserStore) UpdateUserRole(ctx context.Context, name string, role pentecost.Role) error {
	if !role.Valid() {
		return fieldError("role", `Role must be "admin" or "speaker".`)
	}
	return s.db.update(ctx, "update user role", func(tx *Tx) error {
		if role != pentecost.RoleAdmin {
			if err := keepAnAdmin(ctx, tx, name); err != nil {
				return err
			}
		}
		return execOne(ctx, tx, `UPDATE users SET role = ? WHERE name = ?`, role, name)
	})
}

// DeleteUser removes an account, unless it is the last admin. Its sessions
// are left to end by themselves.
func (s *UserStore) DeleteUser(ctx context.Context, name string) error {
	return s.db.update(ctx, "delete user", func(tx *Tx) error {
		if err := keepAnAdmin(ctx, tx, name); err != nil {
			return err
		}
		return execOne(ctx, tx, `DELETE FROM users WHERE name = ?`, name)
	})
}

// keepAnAdmin fails with ECONFLICT when name is the only admin, so that
// the caller does not take its role away. Write transactions take the lock
// at BEGIN, so no other transaction can change the count meanwhile.
func keepAnAdmin(ctx context.Context, tx *Tx, name string) error {
	var last bool
	err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT role FROM users WHERE name = ?), '') = 'admin'
		AND (SELECT COUNT(*) FROM users WHERE role = 'admin') = 1`, name).Scan(&last)
	if err != nil {
		return err
	}
	if last {
		return lastAdmin()
	}
	return nil
}

// storedRole is the role an account is created with: speaker unless given.
func storedRole(r pentecost.Role) (pentecost.Role, error) {
	if r == "" {
		return pentecost.RoleSpeaker, nil
	}
	if !r.Valid() {
		return "", fieldError("role", `Role must be "admin" or "speaker".`)
	}
	return r, nil
}

func lastAdmin() error {
	return pentecost.Errorf(pentecost.ECONFLICT, "This is the last admin account: make another account admin first.")
}

// execOne runs a statement on one account, EUSERNOTFOUND if none matched.
func execOne(ctx context.Context, tx *Tx, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		return userNotFound()
	}
	return err
}

func userNotFound() error {
	return pentecost.Errorf(pentecost.EUSERNOTFOUND, "User not found.")
}

// userColumns is the column list every user query selects, in the order
// scanUser reads.
const userColumns = `name, password_hash, role, created_at, password_changed_at`

func scanUser(row rowScanner) (*pentecost.User, error) {
	var u pentecost.User
	var createdAt, changedAt int64
	if err := row.Scan(&u.Name, &u.PasswordHash, &u.Role, &createdAt, &changedAt); err != nil {
		return nil, err
	}
	u.ID, u.Issuer = u.Name, pentecost.EmbeddedIssuer
	u.CreatedAt, u.PasswordChangedAt = fromMillis(createdAt), fromMillis(changedAt)
	return &u, nil
}

var _ pentecost.UserStore = (*UserStore)(nil)
