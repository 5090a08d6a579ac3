package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"testing"
)

var update = flag.Bool("update", false, "rewrite sluice.schema.json from the Config types")

const schemaFile = "sluice.schema.json"

func TestSchemaFileUpToDate(t *testing.T) {
	got, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the Config types: run `go test ./config -update` to regenerate (%v)", schemaFile, err)
	}
}

func TestSchemaContents(t *testing.T) {
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]struct {
			Description string `json:"description"`
		} `json:"properties"`
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, key := range yamlFields(configType) {
		if _, ok := s.Properties[key.name]; !ok {
			t.Errorf("top-level key %s is missing from the schema", key.name)
		}
	}
	// Descriptions with commas are not cut short (jsonschema tags need \,).
	if d := s.Properties["data_dir"].Description; d != "Directory for the bus store, the lake (unless s3://), the warehouse file and state. Default ./sluice-data" {
		t.Errorf("data_dir description = %q", d)
	}

	var duration, size struct {
		Type    string `json:"type"`
		Pattern string `json:"pattern"`
		OneOf   []struct {
			Type    string `json:"type"`
			Pattern string `json:"pattern"`
		} `json:"oneOf"`
	}
	if err := json.Unmarshal(s.Defs["Duration"], &duration); err != nil || duration.Type != "string" || duration.Pattern == "" {
		t.Fatalf("Duration schema = %s (%v)", s.Defs["Duration"], err)
	}
	if err := json.Unmarshal(s.Defs["ByteSize"], &size); err != nil || len(size.OneOf) != 2 ||
		size.OneOf[0].Type != "integer" || size.OneOf[1].Type != "string" || size.OneOf[1].Pattern == "" {
		t.Fatalf("ByteSize schema = %s (%v)", s.Defs["ByteSize"], err)
	}
	// The patterns accept what the parsers accept.
	durRE := regexp.MustCompile(duration.Pattern)
	for _, in := range []string{"0", "90s", "1h30m", "7d", "1.5d", "500ms"} {
		_, err := ParseDuration(in)
		if !durRE.MatchString(in) || err != nil {
			t.Errorf("duration %q: pattern match %v, parse error %v", in, durRE.MatchString(in), err)
		}
	}
	for _, in := range []string{"72", "-5s", "1w", "3 days"} {
		if durRE.MatchString(in) {
			t.Errorf("duration pattern accepts %q", in)
		}
	}
	sizeRE := regexp.MustCompile(size.OneOf[1].Pattern)
	for _, in := range []string{"1048576", "512KiB", "1MiB", "2GB", "1 MiB", "1.5KiB"} {
		_, err := ParseByteSize(in)
		if !sizeRE.MatchString(in) || err != nil {
			t.Errorf("size %q: pattern match %v, parse error %v", in, sizeRE.MatchString(in), err)
		}
	}
	for _, in := range []string{"-1", "1mb", "1 megabyte", "1.5"} {
		if sizeRE.MatchString(in) {
			t.Errorf("size pattern accepts %q", in)
		}
	}
}
