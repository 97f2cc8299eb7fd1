package auth_test

import (
	"reflect"
	"testing"

	"github.com/pentecost/pentecost/auth"
)

func TestParseOIDCConfig(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			spec string
			want auth.OIDCConfig
		}{
			{
				name: "Full",
				spec: "name=corp,issuer=https://id.test/pool,jwks=https://id.test/pool/keys,audience=abc|def,client_id=abc,token_use=id|access,alg=RS256|ES256",
				want: auth.OIDCConfig{
					Name: "corp", Issuer: "https://id.test/pool", JWKSURL: "https://id.test/pool/keys",
					Audience: []string{"abc", "def"}, ClientID: "abc",
					TokenUse: []string{"id", "access"}, Algorithms: []string{"RS256", "ES256"},
				},
			},
			{
				name: "MinimalWithSpaces",
				spec: " name = corp , issuer = https://id.test , jwks = https://id.test/keys , audience = abc ",
				want: auth.OIDCConfig{Name: "corp", Issuer: "https://id.test", JWKSURL: "https://id.test/keys", Audience: []string{"abc"}},
			},
			{
				name: "ClientIDOnlyLoopbackHTTP",
				spec: "name=dev,issuer=http://127.0.0.1:9000,jwks=http://127.0.0.1:9000/jwks,client_id=c",
				want: auth.OIDCConfig{Name: "dev", Issuer: "http://127.0.0.1:9000", JWKSURL: "http://127.0.0.1:9000/jwks", ClientID: "c"},
			},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := auth.ParseOIDCConfig(tc.spec)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v\nwant %+v", got, tc.want)
				}
			})
		}
	})

	t.Run("Err", func(t *testing.T) {
		const base = "issuer=https://id.test,jwks=https://id.test/keys,client_id=c"
		for name, spec := range map[string]string{
			"Empty":              "",
			"NoName":             base,
			"NoIssuer":           "name=corp,jwks=https://id.test/keys,client_id=c",
			"NoJWKS":             "name=corp,issuer=https://id.test,client_id=c",
			"NoAudience":         "name=corp,issuer=https://id.test,jwks=https://id.test/keys",
			"NotKeyValue":        "name=corp," + base + ",oops",
			"UnknownKey":         "name=corp," + base + ",colour=blue",
			"DuplicateKey":       "name=corp,name=other," + base,
			"NameWithColon":      "name=a:b," + base,
			"NameReserved":       "name=embedded," + base,
			"PlainHTTPJWKS":      "name=corp,issuer=https://id.test,jwks=http://id.test/keys,client_id=c",
			"JWKSNotURL":         "name=corp,issuer=https://id.test,jwks=keys,client_id=c",
			"JWKSOtherScheme":    "name=corp,issuer=https://id.test,jwks=file:///keys,client_id=c",
			"AlgHS256":           "name=corp," + base + ",alg=HS256",
			"AlgNone":            "name=corp," + base + ",alg=none",
			"TokenUseUnknown":    "name=corp," + base + ",token_use=refresh",
			"AccessNeedsClient":  "name=corp,issuer=https://id.test,jwks=https://id.test/keys,audience=a,token_use=access",
			"JWKSLookalikeLocal": "name=corp,issuer=https://id.test,jwks=http://127.0.0.1.evil.test/keys,client_id=c",
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := auth.ParseOIDCConfig(spec); err == nil {
					t.Fatal("want an error")
				} else {
					t.Log(err)
				}
			})
		}
	})
}

func TestCognitoConfig(t *testing.T) {
	c := auth.CognitoConfig("eu-west-1", "eu-west-1_AbC", "client-9")
	want := auth.OIDCConfig{
		Name:       "cognito",
		Issuer:     "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
		JWKSURL:    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json",
		Audience:   []string{"client-9"},
		ClientID:   "client-9",
		TokenUse:   []string{"id", "access"},
		Algorithms: []string{"RS256"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
