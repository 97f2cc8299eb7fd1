package redis_test

import (
	"context"
	"maps"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
	goredis "github.com/redis/go-redis/v9"
)

// TestUserStore_BeforeRoles checks accounts stored before roles existed:
// records without a role, no admins set, no migration marker. Opening the
// Redis makes the oldest of them admin (as SQLite's migration does), the
// others speakers, once: accounts added after that are never promoted.
func TestUserStore_BeforeRoles(t *testing.T) {
	srv := redistest.Start(t)
	clock := storetest.NewClock()
	db := MustOpenDB(t, srv, clock)
	ctx := context.Background()
	c := db.Client()
	// As an older version stored them; "pastor" was created first.
	for name, created := range map[string]string{"pastor": "1748770200123", "admin": "1748770260000", "guest": "1748770320000"} {
		if err := c.Set(ctx, db.Prefix+"{users}:user:"+name,
			`{"name":"`+name+`","passwordHash":"h","createdAt":`+created+`,"passwordChangedAt":`+created+`}`, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ZAdd(ctx, db.Prefix+"{users}:names", goredis.Z{Member: name}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	users := redis.NewUserStore(db)
	if u, err := users.FindUserByName(ctx, "pastor"); err != nil || u.Role != pentecost.RoleSpeaker {
		t.Fatalf("before the migration: %+v, %v; want a speaker", u, err)
	}
	// This Redis was migrated when it was empty, at the first Open: take
	// it back to before.
	if err := c.Del(ctx, db.Prefix+"{users}:roles-migrated").Err(); err != nil {
		t.Fatal(err)
	}

	roles := func() map[string]pentecost.Role {
		t.Helper()
		all, err := redis.NewUserStore(MustOpenDBPrefix(t, srv, clock, db.Prefix)).FindUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]pentecost.Role{}
		for _, u := range all {
			out[u.Name] = u.Role
		}
		return out
	}
	want := map[string]pentecost.Role{"pastor": pentecost.RoleAdmin, "admin": pentecost.RoleSpeaker, "guest": pentecost.RoleSpeaker}
	if got := roles(); !maps.Equal(got, want) {
		t.Fatalf("after the migration: %v, want %v", got, want)
	}
	if u, err := users.FindUserByName(ctx, "pastor"); err != nil || u.PasswordHash != "h" {
		t.Fatalf("the promoted account changed: %+v, %v", u, err)
	}
	// The migration's admin is kept like any last admin.
	if err := users.DeleteUser(ctx, "pastor"); pentecost.ErrorCode(err) != pentecost.ECONFLICT {
		t.Fatalf("removing the only admin: %v, want %s", err, pentecost.ECONFLICT)
	}

	// Once done, it is done: with no admin again (pastor handed over to
	// admin, then admin demoted by hand in the store), a new Open promotes
	// nobody.
	if err := users.UpdateUserRole(ctx, "admin", pentecost.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := users.DeleteUser(ctx, "pastor"); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, db.Prefix+"{users}:admins").Err(); err != nil {
		t.Fatal(err)
	}
	if err := users.UpdateUserRole(ctx, "admin", pentecost.RoleSpeaker); err != nil {
		t.Fatal(err)
	}
	want = map[string]pentecost.Role{"admin": pentecost.RoleSpeaker, "guest": pentecost.RoleSpeaker}
	if got := roles(); !maps.Equal(got, want) {
		t.Fatalf("a second migration ran: %v, want %v", got, want)
	}
}
