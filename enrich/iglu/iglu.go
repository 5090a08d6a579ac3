// Package iglu resolves and checks self-describing JSON: data that names its
// own JSON Schema with an Iglu URI, iglu:vendor/name/format/MODEL-REVISION-ADDITION.
//
// A Registry is a list of folders laid out like an Iglu static registry,
// <dir>/schemas/<vendor>/<name>/<format>/<version>, searched in order. A
// schema is read and compiled once (schemas are immutable by Iglu's rules: a
// change is a new version); a missing one is looked for again after MissTTL,
// or at once after Reload.
package iglu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// Key identifies one schema.
type Key struct {
	Vendor, Name, Format string
	Model, Revision      int
	Addition             int
}

var keyRe = regexp.MustCompile(`^iglu:([a-zA-Z0-9_.\-]+)/([a-zA-Z0-9_\-]+)/([a-zA-Z0-9_\-]+)/([1-9][0-9]*|0)-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$`)

// ParseKey reads an Iglu URI.
func ParseKey(uri string) (Key, error) {
	m := keyRe.FindStringSubmatch(uri)
	if m == nil {
		return Key{}, fmt.Errorf("%q is not an Iglu URI (iglu:vendor/name/jsonschema/1-0-0)", uri)
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return Key{Vendor: m[1], Name: m[2], Format: m[3], Model: n(m[4]), Revision: n(m[5]), Addition: n(m[6])}, nil
}

// Version is MODEL-REVISION-ADDITION.
func (k Key) Version() string { return fmt.Sprintf("%d-%d-%d", k.Model, k.Revision, k.Addition) }

// String is the Iglu URI.
func (k Key) String() string {
	return "iglu:" + k.Vendor + "/" + k.Name + "/" + k.Format + "/" + k.Version()
}

// ErrNotFound reports a schema that no registry holds.
var ErrNotFound = errors.New("schema not found")

// Registry finds and applies schemas. The zero value has no registries: every
// lookup is ErrNotFound. It is safe for concurrent use.
type Registry struct {
	dirs  []string
	mu    sync.Mutex
	cache map[Key]*entry
}

type entry struct {
	schema *jsonschema.Schema
	err    error
	at     time.Time
}

// MissTTL is how long a registry remembers that a schema is missing.
const MissTTL = time.Minute

// Reload forgets every schema found missing, so that schemas added since are
// used (before `sluice bad replay`).
func (r *Registry) Reload() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.cache {
		if e.err != nil {
			delete(r.cache, k)
		}
	}
}

// Open returns a registry over dirs. Each must exist.
func Open(dirs []string) (*Registry, error) {
	for _, d := range dirs {
		st, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("iglu registry: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("iglu registry %s: not a directory", d)
		}
	}
	return &Registry{dirs: dirs, cache: map[Key]*entry{}}, nil
}

// Dirs are the registry's folders.
func (r *Registry) Dirs() []string { return r.dirs }

// Validate checks data (decoded with UnmarshalJSON) against the schema k
// names. The error wraps ErrNotFound when no registry has it, and is a
// *ValidationError when data does not conform.
func (r *Registry) Validate(k Key, data any) error {
	sch, err := r.lookup(k)
	if err != nil {
		return err
	}
	if err := sch.Validate(data); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return &ValidationError{Key: k, Problems: problems(ve)}
		}
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

// UnmarshalJSON decodes JSON the way Validate expects (numbers exact).
func UnmarshalJSON(b []byte) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

func (r *Registry) lookup(k Key) (*jsonschema.Schema, error) {
	if r == nil {
		return nil, fmt.Errorf("%s: %w (no registries configured: enrich.iglu.registries)", k, ErrNotFound)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache[k]; ok && (e.err == nil || time.Since(e.at) < MissTTL) {
		return e.schema, e.err
	}
	e := &entry{at: time.Now()}
	e.schema, e.err = r.load(k)
	r.cache[k] = e
	return e.schema, e.err
}

func (r *Registry) load(k Key) (*jsonschema.Schema, error) {
	rel := filepath.Join(k.Vendor, k.Name, k.Format, k.Version())
	for _, d := range r.dirs {
		for _, p := range []string{filepath.Join(d, "schemas", rel), filepath.Join(d, rel)} {
			f, err := os.Open(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			doc, err := jsonschema.UnmarshalJSON(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %s is not JSON: %v", k, p, err)
			}
			if m, ok := doc.(map[string]any); ok {
				// Iglu schemas name Iglu Central's meta-schema, which is
				// draft 4 plus "self"; it can't be fetched here.
				if s, _ := m["$schema"].(string); strings.Contains(s, "iglucentral.com") || strings.Contains(s, "com.snowplowanalytics.self-desc") {
					delete(m, "$schema")
				}
			}
			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft4)
			c.UseLoader(noLoader{})
			url := "file://" + filepath.ToSlash(p)
			if err := c.AddResource(url, doc); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", k, p, err)
			}
			sch, err := c.Compile(url)
			if err != nil {
				return nil, fmt.Errorf("%s: %s is not a usable JSON Schema: %v", k, p, err)
			}
			return sch, nil
		}
	}
	return nil, fmt.Errorf("%s: %w in %s", k, ErrNotFound, strings.Join(r.dirs, ", "))
}

// noLoader refuses remote references: validation must not depend on the
// network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s: schemas may only refer to themselves", url)
}

// ValidationError lists where data broke its schema.
type ValidationError struct {
	Key      Key
	Problems []string // "at /field: message"
}

func (e *ValidationError) Error() string {
	const most = 5
	ps := e.Problems
	more := ""
	if len(ps) > most {
		more = fmt.Sprintf("; and %d more", len(ps)-most)
		ps = ps[:most]
	}
	return fmt.Sprintf("does not match %s: %s%s", e.Key, strings.Join(ps, "; "), more)
}

// problems flattens the leaves of a validation error.
func problems(ve *jsonschema.ValidationError) []string {
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}
