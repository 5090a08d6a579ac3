package logparse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// jsonParser reads one JSON object per record. Its top-level members become
// fields, typed; "time", "timestamp", "@timestamp" or "ts" (RFC 3339, or
// epoch seconds or milliseconds) become Time, "message"/"msg" Message,
// "host"/"hostname" Host, "app"/"service" App. null members are left out.
type jsonParser struct{}

func (jsonParser) Parse(rec []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Record{}, fmt.Errorf("json: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Record{}, fmt.Errorf("json: record is not an object (starts with %s)", describe(tok))
	}
	var r Record
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Record{}, fmt.Errorf("json: member %q at byte %d: %w", name, dec.InputOffset(), err)
		}
		f, ok := jsonField(name, raw)
		if !ok {
			continue
		}
		if r.lift(f) {
			continue
		}
		r.Fields = append(r.Fields, f)
	}
	if _, err := dec.Token(); err != nil {
		return Record{}, fmt.Errorf("json: at byte %d: %w", dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Record{}, fmt.Errorf("json: more after the object at byte %d", dec.InputOffset())
	}
	return r, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return "'" + v.String() + "'"
	case string:
		return "a string"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// jsonField types one member; ok is false for null.
func jsonField(name string, raw json.RawMessage) (Field, bool) {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Field{Name: name, Kind: String, Value: string(raw)}, true
		}
		return Field{Name: name, Kind: String, Value: s}, true
	case 't', 'f':
		return Field{Name: name, Kind: Bool, Value: string(raw)}, true
	case 'n':
		return Field{}, false
	case '{', '[':
		return Field{Name: name, Kind: JSON, Value: string(raw)}, true
	}
	return numberField(name, string(raw)), true
}

// lift moves a well-known member into the record's own columns.
func (r *Record) lift(f Field) bool {
	switch f.Name {
	case "time", "timestamp", "@timestamp", "ts":
		if !r.Time.IsZero() {
			return false
		}
		if t, ok := jsonTime(f); ok {
			r.Time = t
			return true
		}
	case "message", "msg":
		if f.Kind == String && r.Message == "" {
			r.Message = f.Value
			return true
		}
	case "host", "hostname":
		if f.Kind == String && r.Host == "" {
			r.Host = f.Value
			return true
		}
	case "app", "service":
		if f.Kind == String && r.App == "" {
			r.App = f.Value
			return true
		}
	}
	return false
}

func jsonTime(f Field) (time.Time, bool) {
	switch f.Kind {
	case String:
		return parseTime(f.Value)
	case Int, Float:
		if n, err := strconv.ParseInt(f.Value, 10, 64); err == nil && n >= 0 && n < 1e17 {
			if n >= 1e11 { // milliseconds (1e11 s is the year 5138)
				return time.UnixMilli(n).UTC(), true
			}
			return time.Unix(n, 0).UTC(), true
		}
		v, err := strconv.ParseFloat(f.Value, 64)
		if err != nil || v < 0 || v > 1e17 || math.IsNaN(v) {
			return time.Time{}, false
		}
		if v >= 1e11 { // milliseconds (1e11 s is the year 5138)
			v /= 1000
		}
		sec := math.Floor(v)
		return time.Unix(int64(sec), int64((v-sec)*1e9)).UTC(), true
	}
	return time.Time{}, false
}

// validJSON checks a JSON field's value before it is written raw.
func validJSON(s string) bool { return json.Valid([]byte(s)) }
