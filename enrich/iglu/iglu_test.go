package iglu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	k, err := ParseKey("iglu:com.acme-shop/link_click/jsonschema/1-2-3")
	if err != nil || k.Vendor != "com.acme-shop" || k.Name != "link_click" || k.Format != "jsonschema" || k.Version() != "1-2-3" || k.Model != 1 {
		t.Fatalf("%+v %v", k, err)
	}
	if k.String() != "iglu:com.acme-shop/link_click/jsonschema/1-2-3" {
		t.Errorf("String() = %s", k)
	}
	for _, bad := range []string{"", "com.acme/x/jsonschema/1-0-0", "iglu:com.acme/x/jsonschema/1-0", "iglu:com.acme/x/jsonschema/01-0-0",
		"iglu:com.acme/x/jsonschema/1-0-0/", "iglu:com acme/x/jsonschema/1-0-0", "iglu:com.acme//jsonschema/1-0-0", "iglu:com.acme/x/jsonschema/1-0-0\n"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func write(t *testing.T, dir, rel, body string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	// An Iglu Central style schema (its meta-schema can't be fetched), in
	// the static registry layout; a plain one without schemas/ in another.
	write(t, a, "schemas/com.acme/click/jsonschema/1-0-0", `{
		"$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
		"self": {"vendor": "com.acme", "name": "click", "format": "jsonschema", "version": "1-0-0"},
		"type": "object", "properties": {"url": {"type": "string", "maxLength": 8}, "n": {"type": "integer"}},
		"required": ["url"], "additionalProperties": false}`)
	write(t, b, "com.acme/view/jsonschema/1-0-0", `{"type": "object"}`)
	write(t, b, "com.acme/remote/jsonschema/1-0-0", `{"$ref": "http://example.com/other.json"}`)
	r, err := Open([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	check := func(uri, data string) error {
		t.Helper()
		k, err := ParseKey(uri)
		if err != nil {
			t.Fatal(err)
		}
		v, err := UnmarshalJSON([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		return r.Validate(k, v)
	}
	if err := check("iglu:com.acme/click/jsonschema/1-0-0", `{"url": "/a", "n": 3}`); err != nil {
		t.Errorf("valid data: %v", err)
	}
	if err := check("iglu:com.acme/view/jsonschema/1-0-0", `{"any": 1}`); err != nil {
		t.Errorf("second registry: %v", err)
	}
	err = check("iglu:com.acme/click/jsonschema/1-0-0", `{"url": "/far/too/long", "n": 1.5, "x": true}`)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 3 || !strings.Contains(err.Error(), "at /url") || !strings.Contains(err.Error(), "at /n") {
		t.Errorf("invalid data: %v", err)
	}
	if err := check("iglu:com.acme/click/jsonschema/1-0-1", `{}`); !errors.Is(err, ErrNotFound) {
		t.Errorf("another version is not found: %v", err)
	}
	if err := check("iglu:com.acme/remote/jsonschema/1-0-0", `{}`); err == nil || errors.Is(err, ErrNotFound) || errors.As(err, &ve) {
		t.Errorf("a schema that refers to the network must fail to load: %v", err)
	}

	// A schema added later is found after Reload (until MissTTL, the miss
	// is remembered).
	if err := check("iglu:com.acme/late/jsonschema/1-0-0", `"x"`); !errors.Is(err, ErrNotFound) {
		t.Fatalf("late schema before it was written: %v", err)
	}
	write(t, b, "com.acme/late/jsonschema/1-0-0", `{"type": "string"}`)
	if err := check("iglu:com.acme/late/jsonschema/1-0-0", `"x"`); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the miss was not remembered: %v", err)
	}
	r.Reload()
	if err := check("iglu:com.acme/late/jsonschema/1-0-0", `"x"`); err != nil {
		t.Errorf("after Reload: %v", err)
	}

	var none *Registry
	if err := none.Validate(Key{Vendor: "v", Name: "n", Format: "jsonschema"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("no registry: %v", err)
	}
	if _, err := Open([]string{filepath.Join(a, "missing")}); err == nil {
		t.Error("a missing folder opened")
	}
}
