package redis_test

import (
	"context"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
	goredis "github.com/redis/go-redis/v9"
)

// TestUserStore_BeforeRoles checks accounts stored before roles existed:
// their records have no role and the admins set does not exist. They are
// speakers, may be removed (there is no admin to keep), and one can be
// made admin, which then counts as the last admin.
func TestUserStore_BeforeRoles(t *testing.T) {
	srv := redistest.Start(t)
	db := MustOpenDB(t, srv, storetest.NewClock())
	ctx := context.Background()
	c := db.Client()
	for _, name := range []string{"admin", "guest"} {
		if err := c.Set(ctx, db.Prefix+"{users}:user:"+name,
			`{"name":"`+name+`","passwordHash":"h","createdAt":1748770200123,"passwordChangedAt":1748770200123}`, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ZAdd(ctx, db.Prefix+"{users}:names", goredis.Z{Member: name}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	users := redis.NewUserStore(db)
	u, err := users.FindUserByName(ctx, "admin")
	if err != nil || u.Role != pentecost.RoleSpeaker {
		t.Fatalf("got %+v, %v; want a speaker", u, err)
	}
	if err := users.DeleteUser(ctx, "guest"); err != nil {
		t.Fatal(err)
	}
	if err := users.UpdateUserRole(ctx, "admin", pentecost.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if u, err := users.FindUserByName(ctx, "admin"); err != nil || u.Role != pentecost.RoleAdmin || u.PasswordHash != "h" {
		t.Fatalf("got %+v, %v; want the same account, admin", u, err)
	}
	if err := users.DeleteUser(ctx, "admin"); pentecost.ErrorCode(err) != pentecost.ECONFLICT {
		t.Fatalf("removing the only admin: %v, want %s", err, pentecost.ECONFLICT)
	}
}
