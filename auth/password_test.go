package auth_test

import (
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

func TestPassword(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		hash, err := cheapParams.Hash("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=1,p=1$") {
			t.Fatalf("hash = %q", hash)
		}
		ok, err := auth.CheckPassword(hash, "correct horse battery")
		if err != nil || !ok {
			t.Fatalf("CheckPassword = %v, %v; want true", ok, err)
		}
		again, err := cheapParams.Hash("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if again == hash {
			t.Fatal("two hashes of one password are equal: salt not random")
		}
	})

	t.Run("OKDefaultParams", func(t *testing.T) {
		hash, err := auth.HashPassword("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=65536,t=1,p=2$") {
			t.Fatalf("hash = %q", hash)
		}
		if ok, err := auth.CheckPassword(hash, "correct horse battery"); err != nil || !ok {
			t.Fatalf("CheckPassword = %v, %v; want true", ok, err)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		hash, err := cheapParams.Hash("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{"correct horse batterY", "", "correct horse battery "} {
			if ok, err := auth.CheckPassword(hash, pw); err != nil || ok {
				t.Fatalf("CheckPassword(%q) = %v, %v; want false", pw, ok, err)
			}
		}
	})

	t.Run("ErrPolicy", func(t *testing.T) {
		for name, pw := range map[string]string{
			"Empty":      "",
			"TooShort":   "1234567",
			"TooLong":    strings.Repeat("x", auth.MaxPasswordLength+1),
			"InvalidUTF": "abcdefgh\xff",
		} {
			t.Run(name, func(t *testing.T) {
				_, err := cheapParams.Hash(pw)
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
			})
		}
		// Eight characters is enough, counted as characters, not bytes.
		if _, err := cheapParams.Hash("ééééééé"); pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
			t.Fatal("seven characters accepted")
		}
		if _, err := cheapParams.Hash("éééééééé"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrMalformedHash", func(t *testing.T) {
		good, err := cheapParams.Hash("correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(good, "$") // "", argon2id, v=19, params, salt, hash
		join := func(p ...string) string { return strings.Join(p, "$") }
		for name, encoded := range map[string]string{
			"Empty":         "",
			"Garbage":       "garbage",
			"BcryptHash":    "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
			"Argon2i":       join("", "argon2i", parts[2], parts[3], parts[4], parts[5]),
			"OtherVersion":  join("", "argon2id", "v=16", parts[3], parts[4], parts[5]),
			"ParamsOrder":   join("", "argon2id", parts[2], "t=1,m=64,p=1", parts[4], parts[5]),
			"ParamNotInt":   join("", "argon2id", parts[2], "m=x,t=1,p=1", parts[4], parts[5]),
			"ZeroThreads":   join("", "argon2id", parts[2], "m=64,t=1,p=0", parts[4], parts[5]),
			"HugeMemory":    join("", "argon2id", parts[2], "m=4294967295,t=1,p=1", parts[4], parts[5]),
			"HugeTime":      join("", "argon2id", parts[2], "m=64,t=100000,p=1", parts[4], parts[5]),
			"BadSalt":       join("", "argon2id", parts[2], parts[3], "!!!", parts[5]),
			"ShortSalt":     join("", "argon2id", parts[2], parts[3], "AAAA", parts[5]),
			"BadKey":        join("", "argon2id", parts[2], parts[3], parts[4], "!!!"),
			"PaddedKey":     good + "==",
			"ExtraField":    good + "$x",
			"MissingField":  join("", "argon2id", parts[2], parts[3], parts[4]),
			"NoLeadingDoll": strings.TrimPrefix(good, "$"),
		} {
			t.Run(name, func(t *testing.T) {
				ok, err := auth.CheckPassword(encoded, "correct horse battery")
				if err == nil || ok {
					t.Fatalf("CheckPassword = %v, %v; want false and an error", ok, err)
				}
				// A broken stored hash is our fault, never the user's.
				wantCode(t, err, pentecost.EINTERNAL)
			})
		}
	})

	t.Run("ErrBadParams", func(t *testing.T) {
		for name, p := range map[string]auth.Params{
			"ZeroThreads": {Memory: 64, Time: 1, Threads: 0, SaltLength: 16, KeyLength: 32},
			"ZeroTime":    {Memory: 64, Time: 0, Threads: 1, SaltLength: 16, KeyLength: 32},
			"TinyMemory":  {Memory: 4, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 32},
			"ShortSalt":   {Memory: 64, Time: 1, Threads: 1, SaltLength: 4, KeyLength: 32},
			"ShortKey":    {Memory: 64, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 4},
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := p.Hash("correct horse battery"); err == nil {
					t.Fatal("want an error")
				}
			})
		}
	})
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pw := auth.GeneratePassword()
		if len(pw) != 20 || strings.Trim(pw, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			t.Fatalf("password %q is not 20 URL-safe characters", pw)
		}
		if err := auth.ValidatePassword(pw); err != nil {
			t.Fatal(err)
		}
		if seen[pw] {
			t.Fatalf("password %q generated twice", pw)
		}
		seen[pw] = true
	}
}
