package http

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// openAPISpec is the part of docs/openapi.json the test reads.
type openAPISpec struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
				Status map[string]int `json:"x-pentecost-status"`
			} `json:"Error"`
		} `json:"schemas"`
	} `json:"components"`
}

var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

func loadSpec(t *testing.T) (openAPISpec, map[string]any) {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec openAPISpec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return spec, raw
}

// TestOpenAPI_Routes checks that the spec and the route table describe the
// same method+path pairs, both ways.
func TestOpenAPI_Routes(t *testing.T) {
	spec, _ := loadSpec(t)
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Fatalf("openapi = %q, want 3.1.x", spec.OpenAPI)
	}

	registered := make(map[string]bool)
	for _, rt := range routes {
		registered[strings.ToLower(rt.Method)+" "+rt.Path] = true
	}
	documented := make(map[string]bool)
	for path, item := range spec.Paths {
		for method := range item {
			if httpMethods[method] {
				documented[method+" "+path] = true
			}
		}
	}

	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in docs/openapi.json", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("docs/openapi.json has %s, which the server does not register", k)
		}
	}
	if len(registered) == 0 {
		t.Fatal("no routes")
	}
}

// TestOpenAPI_ErrorCodes checks that the Error schema's code enum is exactly
// the status table, with the same status for each code.
func TestOpenAPI_ErrorCodes(t *testing.T) {
	spec, _ := loadSpec(t)
	e := spec.Components.Schemas.Error

	enum := make(map[string]bool)
	for _, c := range e.Properties.Code.Enum {
		enum[c] = true
	}
	for code := range codes {
		if !enum[code] {
			t.Errorf("code %s is missing from the Error code enum", code)
		}
		if got, want := e.Status[code], StatusCode(code); got != want {
			t.Errorf("x-pentecost-status of %s = %d, server answers %d", code, got, want)
		}
	}
	for c := range enum {
		if _, ok := codes[c]; !ok {
			t.Errorf("the spec lists code %s, which is not in the status table", c)
		}
	}
	if len(enum) == 0 {
		t.Fatal("the Error schema has no code enum")
	}
}

// TestOpenAPI_Refs checks that every $ref points at something that exists.
func TestOpenAPI_Refs(t *testing.T) {
	_, raw := loadSpec(t)
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					n++
					ref, _ := x.(string)
					if !resolves(raw, ref) {
						t.Errorf("$ref %q does not resolve", ref)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(raw)
	if n == 0 {
		t.Fatal("no $ref found")
	}
}

func resolves(root map[string]any, ref string) bool {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	var cur any = root
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// specOperation is the part of an operation the status test reads.
type specOperation struct {
	RequestBody json.RawMessage            `json:"requestBody"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// TestOpenAPI_Statuses checks that each operation lists the statuses its
// route can answer, as the route table says what the route does: 500 for
// any (a panic is answered so), 401 with a token required, 403 with an
// admin's token required, 400 and 413 with
// a JSON body, 429 with a rate limit, 400 and 404 with a session ID in the
// path. 404 and 405 for paths and methods that do not exist are global.
func TestOpenAPI_Statuses(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths  map[string]map[string]json.RawMessage `json:"paths"`
		Global map[string]json.RawMessage            `json:"x-pentecost-global-responses"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}

	for _, status := range []string{"404", "405"} {
		if _, ok := spec.Global[status]; !ok {
			t.Errorf("x-pentecost-global-responses lacks %s", status)
		}
	}

	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		raw, ok := spec.Paths[rt.Path][strings.ToLower(rt.Method)]
		if !ok {
			continue // TestOpenAPI_Routes reports it
		}
		var op specOperation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (op.RequestBody != nil) != rt.Body {
			t.Errorf("%s: requestBody documented %v, route reads a body %v", name, op.RequestBody != nil, rt.Body)
		}

		want := map[string]bool{"500": true}
		if rt.Auth {
			want["401"] = true
		}
		if rt.Admin {
			want["403"] = true
		}
		if rt.Body {
			want["400"], want["413"] = true, true
		}
		if rt.Limited {
			want["429"] = true
		}
		if strings.Contains(rt.Path, "{id}") {
			want["400"], want["404"] = true, true
		}
		for status := range want {
			if _, ok := op.Responses[status]; !ok {
				t.Errorf("%s: response %s is not documented", name, status)
			}
		}
		// And the other way: these statuses only where they can happen.
		for status, can := range map[string]bool{"413": rt.Body, "429": rt.Limited} {
			if _, ok := op.Responses[status]; ok && !can {
				t.Errorf("%s: documents %s, which it cannot answer", name, status)
			}
		}
	}
}
