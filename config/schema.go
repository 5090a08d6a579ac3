package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/invopop/jsonschema"
	"github.com/sluice-data/sluice"
)

// JSONSchema returns the JSON Schema of sluice.yaml (indented JSON), generated
// from the Config types so that it cannot drift from what Parse accepts.
// Editors use it for completion and checks; Parse remains the authority (it
// also checks meaning, such as which features this version has).
func JSONSchema() ([]byte, error) {
	r := &jsonschema.Reflector{ExpandedStruct: true}
	s := r.Reflect(&Config{})
	s.ID = "https://raw.githubusercontent.com/sluice-data/sluice/main/config/sluice.schema.json"
	s.Title = "sluice.yaml"
	s.Description = "Configuration of sluice, the data pipeline in one binary."
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep <data_dir> readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("marshal JSON Schema: %w", err)
	}
	return buf.Bytes(), nil
}

// JSONSchemaExtend limits the stream names to the built-in streams.
func (Config) JSONSchemaExtend(s *jsonschema.Schema) {
	if streams, ok := s.Properties.Get("streams"); ok {
		streams.PropertyNames = &jsonschema.Schema{Enum: toAny(sluice.Streams)}
	}
}

// JSONSchemaExtend lists the source types.
func (Source) JSONSchemaExtend(s *jsonschema.Schema) {
	if t, ok := s.Properties.Get("type"); ok {
		t.Enum = toAny(sourceTypes)
		t.Description = "Kind of source: syslog (a listener), file (tailed files) or postgres_cdc (changes of PostgreSQL tables). The HTTP collector is always on besides."
	}
}

func toAny(list []string) []any {
	out := make([]any, len(list))
	for i, v := range slices.Clone(list) {
		out[i] = v
	}
	return out
}
