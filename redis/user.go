package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// userNameRe is what an embedded account name may look like, as in sqlite.
// Names are case-sensitive.
var userNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

// UserStore keeps embedded speaker accounts in Redis, so that every node
// knows every account. Password hashes are stored as given.
type UserStore struct {
	db *DB
}

// NewUserStore returns a UserStore on db.
func NewUserStore(db *DB) *UserStore { return &UserStore{db: db} }

func (s *UserStore) key(name string) string { return s.db.Prefix + "{users}:user:" + name }
func (s *UserStore) namesKey() string       { return s.db.Prefix + "{users}:names" }

// adminsKey is the set of admin account names: the index that lets a
// script tell the last admin in one step. Every script that changes a
// role changes the record and the set together.
func (s *UserStore) adminsKey() string { return s.db.Prefix + "{users}:admins" }

// rolesMigratedKey marks a Redis whose accounts have been brought under
// roles (migrateRoles).
func (s *UserStore) rolesMigratedKey() string { return s.db.Prefix + "{users}:roles-migrated" }

// migrateRoles brings accounts stored before roles under them, once per
// Redis, as the SQLite store's migration does: the oldest account (on an
// install that began with serve, the one made at first start) becomes the
// admin when none is; the others stay speakers. The marker is written
// last, so that a node stopped halfway leaves the step to the next; nodes
// doing it at once pick the same account. Accounts added after it ran are
// never promoted.
func (s *UserStore) migrateRoles(ctx context.Context) error {
	done, err := s.db.client.Exists(ctx, s.rolesMigratedKey()).Result()
	if err != nil {
		return err
	}
	if done == 1 {
		return nil
	}
	users, err := s.FindUsers(ctx)
	if err != nil {
		return err
	}
	var oldest *pentecost.User
	admin := false
	for _, u := range users {
		admin = admin || u.IsAdmin()
		// By creation, then name: the same choice on every node.
		if oldest == nil || u.CreatedAt.Before(oldest.CreatedAt) || u.CreatedAt.Equal(oldest.CreatedAt) && u.Name < oldest.Name {
			oldest = u
		}
	}
	if !admin && oldest != nil {
		if err := s.UpdateUserRole(ctx, oldest.Name, pentecost.RoleAdmin); err != nil && pentecost.ErrorCode(err) != pentecost.EUSERNOTFOUND {
			return err
		}
		s.db.Logger.Info("accounts from before roles: made the oldest one admin", "account", oldest.Name)
	}
	return s.db.client.Set(ctx, s.rolesMigratedKey(), "1", 0).Err()
}

// userRecord is an account as stored, times in Unix milliseconds.
type userRecord struct {
	Name         string `json:"name"`
	PasswordHash string `json:"passwordHash"`
	// Role is absent from accounts stored before roles: speakers.
	Role              string `json:"role,omitempty"`
	CreatedAt         int64  `json:"createdAt"`
	PasswordChangedAt int64  `json:"passwordChangedAt"`
}

func (r *userRecord) user() *pentecost.User {
	role := pentecost.Role(r.Role)
	if role == "" {
		role = pentecost.RoleSpeaker
	}
	return &pentecost.User{ID: r.Name, Name: r.Name, Issuer: pentecost.EmbeddedIssuer, Role: role,
		PasswordHash: r.PasswordHash, CreatedAt: fromMillis(r.CreatedAt), PasswordChangedAt: fromMillis(r.PasswordChangedAt)}
}

// createUserScript stores an account unless the name is taken; names sort
// by byte value in a sorted set whose scores are all 0. ARGV[3] is 1 for
// an admin.
var createUserScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if ARGV[3] == '1' then redis.call('SADD', KEYS[3], ARGV[2]) end
return 1`)

// deleteUserScript removes an account and its name, unless it is the last
// admin: 1 if removed, 0 if there was none, -2 for the last admin.
var deleteUserScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 and redis.call('SCARD', KEYS[3]) == 1 then return -2 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1`)

// roleScript sets KEYS[1] to ARGV[2] if it still holds ARGV[1], with the
// account ARGV[3] in the admins set KEYS[2] when ARGV[4] is 1 and out of it
// otherwise: 1 if set, 0 if the record changed, -1 if it is gone, -2 if it
// is the last admin and would not be one.
var roleScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[2], ARGV[3])
else
  if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 1 and redis.call('SCARD', KEYS[2]) == 1 then return -2 end
  redis.call('SREM', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1`)

// CreateUser stores a new account named u.Name and fills in u.ID, u.Issuer,
// u.CreatedAt and u.PasswordChangedAt (both now).
// Errors: ECONFLICT, EVALIDATIONFIELD, EUNAVAILABLE.
func (s *UserStore) CreateUser(ctx context.Context, u *pentecost.User) error {
	if !userNameRe.MatchString(u.Name) {
		return fieldError("name", "Name must be 1 to 64 letters, digits, dots, underscores or hyphens.")
	}
	if u.PasswordHash == "" {
		return fieldError("password", "Password is required.")
	}
	role := u.Role
	if role == "" {
		role = pentecost.RoleSpeaker
	} else if !role.Valid() {
		return fieldError("role", `Role must be "admin" or "speaker".`)
	}
	now := s.db.nowMillis().UnixMilli()
	rec := userRecord{Name: u.Name, PasswordHash: u.PasswordHash, Role: string(role), CreatedAt: now, PasswordChangedAt: now}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ok, err := createUserScript.Run(ctx, s.db.client, []string{s.key(u.Name), s.namesKey(), s.adminsKey()},
		data, u.Name, flag(role == pentecost.RoleAdmin)).Int()
	if err != nil {
		return s.db.storeError(ctx, "create user", err)
	}
	if ok == 0 {
		return pentecost.Errorf(pentecost.ECONFLICT, "A user with that name already exists.")
	}
	*u = *rec.user()
	return nil
}

// FindUserByName returns the account with exactly this name.
func (s *UserStore) FindUserByName(ctx context.Context, name string) (*pentecost.User, error) {
	if !userNameRe.MatchString(name) {
		return nil, userNotFound() // such a name cannot have been stored
	}
	rec, _, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	return rec.user(), nil
}

// get returns an account and its stored bytes.
func (s *UserStore) get(ctx context.Context, name string) (*userRecord, []byte, error) {
	data, err := s.db.client.Get(ctx, s.key(name)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil, userNotFound()
	} else if err != nil {
		return nil, nil, s.db.storeError(ctx, "find user", err)
	}
	var rec userRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, nil, fmt.Errorf("redis: stored user is corrupt: %w", err)
	}
	return &rec, data, nil
}

// FindUsers returns every account, ordered by name.
func (s *UserStore) FindUsers(ctx context.Context) ([]*pentecost.User, error) {
	names, err := s.db.client.ZRange(ctx, s.namesKey(), 0, -1).Result()
	if err != nil {
		return nil, s.db.storeError(ctx, "find users", err)
	}
	users := []*pentecost.User{}
	for _, name := range names {
		rec, _, err := s.get(ctx, name)
		if pentecost.ErrorCode(err) == pentecost.EUSERNOTFOUND {
			continue // deleted meanwhile
		} else if err != nil {
			return nil, err
		}
		users = append(users, rec.user())
	}
	return users, nil
}

// UpdateUserPassword replaces an account's password hash and sets its
// PasswordChangedAt to now. Errors: EUSERNOTFOUND, EVALIDATIONFIELD, EUNAVAILABLE.
func (s *UserStore) UpdateUserPassword(ctx context.Context, name, passwordHash string) error {
	if passwordHash == "" {
		return fieldError("password", "Password is required.")
	}
	return s.update(ctx, "update user password", name, func(rec *userRecord) {
		rec.PasswordHash, rec.PasswordChangedAt = passwordHash, s.db.nowMillis().UnixMilli()
	}, func(old, data []byte) (int, error) {
		// Compare and set, so that a concurrent delete is not undone.
		return casScript.Run(ctx, s.db.client, []string{s.key(name)}, old, data).Int()
	})
}

// update changes an account's record with change and stores it with cas,
// a script that stores data only if the record still holds old, and again
// while the record changes under it. cas answers 1 when stored, 0 when the
// record changed, -1 when it is gone, -2 when it is the last admin.
func (s *UserStore) update(ctx context.Context, op, name string, change func(*userRecord), cas func(old, data []byte) (int, error)) error {
	if !userNameRe.MatchString(name) {
		return userNotFound()
	}
	for range maxTxAttempts {
		rec, old, err := s.get(ctx, name)
		if err != nil {
			return err
		}
		change(rec)
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		ok, err := cas(old, data)
		if err != nil {
			return s.db.storeError(ctx, op, err)
		}
		switch ok {
		case 1:
			return nil
		case -1:
			return userNotFound()
		case -2:
			return lastAdmin()
		}
	}
	return s.db.storeError(ctx, op, errContention)
}

// casScript sets KEYS[1] to ARGV[2] if it still holds ARGV[1]: 1 if set,
// 0 if it changed, -1 if it is gone.
var casScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`)

// UpdateUserRole changes an account's role, unless that would leave no
// admin. Errors: EUSERNOTFOUND, EVALIDATIONFIELD, ECONFLICT, EUNAVAILABLE.
func (s *UserStore) UpdateUserRole(ctx context.Context, name string, role pentecost.Role) error {
	if !role.Valid() {
		return fieldError("role", `Role must be "admin" or "speaker".`)
	}
	return s.update(ctx, "update user role", name, func(rec *userRecord) { rec.Role = string(role) },
		func(old, data []byte) (int, error) {
			return roleScript.Run(ctx, s.db.client, []string{s.key(name), s.adminsKey()},
				old, data, name, flag(role == pentecost.RoleAdmin)).Int()
		})
}

// DeleteUser removes an account, unless it is the last admin.
// Errors: EUSERNOTFOUND, ECONFLICT, EUNAVAILABLE.
func (s *UserStore) DeleteUser(ctx context.Context, name string) error {
	if !userNameRe.MatchString(name) {
		return userNotFound()
	}
	n, err := deleteUserScript.Run(ctx, s.db.client, []string{s.key(name), s.namesKey(), s.adminsKey()}, name).Int()
	if err != nil {
		return s.db.storeError(ctx, "delete user", err)
	}
	switch n {
	case 0:
		return userNotFound()
	case -2:
		return lastAdmin()
	}
	return nil
}

// flag is a boolean as a script argument.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func lastAdmin() error {
	return pentecost.Errorf(pentecost.ECONFLICT, "This is the last admin account: make another account admin first.")
}

func userNotFound() error {
	return pentecost.Errorf(pentecost.EUSERNOTFOUND, "User not found.")
}

var _ pentecost.UserStore = (*UserStore)(nil)
