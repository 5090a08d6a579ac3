package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// durationPattern is the syntax of a Duration, shared by the parser and the
// JSON Schema: "0", or one or more number+unit pairs such as 1h30m or 7d.
const durationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d))+)$`

var (
	durationRE     = regexp.MustCompile(durationPattern)
	durationPartRE = regexp.MustCompile(`([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h|d)`)
)

const durationHint = "write a number with a unit (ms, s, m, h or d), e.g. 500ms, 90s, 72h or 7d"

// ParseDuration parses a Go duration ("90s", "1h30m") that may also use a
// "d" (24h) unit ("7d", "1d12h"). Negative durations are rejected: nothing in
// sluice.yaml can be negative.
func ParseDuration(s string) (Duration, error) {
	if !durationRE.MatchString(s) {
		switch {
		case strings.HasPrefix(s, "-"):
			return 0, fmt.Errorf("%q is negative", s)
		case s != "" && strings.Trim(s, "0123456789.") == "":
			return 0, fmt.Errorf("%q has no unit", s)
		default:
			return 0, fmt.Errorf("%q is not a duration", s)
		}
	}
	var total time.Duration
	for _, m := range durationPartRE.FindAllStringSubmatch(s, -1) {
		num, unit := m[1], m[2]
		mult := time.Duration(1)
		if unit == "d" {
			unit, mult = "h", 24
		}
		part, err := time.ParseDuration(num + unit)
		if err != nil || part > math.MaxInt64/mult || total > math.MaxInt64-part*mult {
			return 0, fmt.Errorf("%q is too long", s)
		}
		total += part * mult
	}
	return Duration(total), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d the way it is written in sluice.yaml, without zero
// components: "72h", "1h30m", "500ms".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UnmarshalYAML implements yaml.InterfaceUnmarshaler.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	parsed, err := decodeScalar(unmarshal, ParseDuration)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// MarshalYAML implements yaml.InterfaceMarshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes d as a string such as "72h".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string such as "72h" or "7d".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"72h\": %w", err)
	}
	parsed, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = parsed
	return nil
}

// JSONSchema describes Duration for github.com/invopop/jsonschema.
func (Duration) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		Type:        "string",
		Pattern:     durationPattern,
		Description: "A duration: a number with a unit (ns, us, ms, s, m, h, d), e.g. 500ms, 90s, 1h30m, 7d",
		Examples:    []any{"90s", "72h", "7d"},
	}
}

// Byte size units. KB, MB, GB and TB are powers of 1000; KiB, MiB, GiB and
// TiB are powers of 1024.
const (
	KB  ByteSize = 1000
	MB           = 1000 * KB
	GB           = 1000 * MB
	TB           = 1000 * GB
	KiB ByteSize = 1024
	MiB          = 1024 * KiB
	GiB          = 1024 * MiB
	TiB          = 1024 * GiB
)

// byteSizePattern is the string syntax of a ByteSize, shared by the parser
// and the JSON Schema.
const byteSizePattern = `^([0-9]+|[0-9]+(\.[0-9]+)? ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB))$`

var (
	byteSizeRE    = regexp.MustCompile(byteSizePattern)
	byteSizeUnits = map[string]ByteSize{"B": 1, "KB": KB, "MB": MB, "GB": GB, "TB": TB, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB}
)

const byteSizeHint = "write a whole number of bytes, or a number with a unit: KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 512KiB or 1MiB"

// ParseByteSize parses a whole number of bytes ("1048576") or a number with
// a unit ("512KiB", "1.5GB", "1 MiB").
func ParseByteSize(s string) (ByteSize, error) {
	if !byteSizeRE.MatchString(s) {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return 0, fmt.Errorf("%q is not a size", s)
	}
	num := strings.TrimRight(s, "BKMGTi ")
	unit := byteSizeUnits[strings.TrimSpace(s[len(num):])]
	if unit == 0 {
		unit = 1
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/int64(unit) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return ByteSize(n) * unit, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	bytes := f * float64(unit)
	if err != nil || bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if bytes != math.Trunc(bytes) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return ByteSize(bytes), nil
}

// String formats b with the unit that gives the smallest whole number,
// binary units first: 1048576 is "1MiB", 2000000000 is "2GB", 1500 is "1500".
func (b ByteSize) String() string {
	best, unit := b, ""
	for _, u := range []struct {
		name string
		size ByteSize
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}} {
		if b != 0 && b%u.size == 0 && b/u.size < best {
			best, unit = b/u.size, u.name
		}
	}
	return strconv.FormatInt(int64(best), 10) + unit
}

// UnmarshalYAML implements yaml.InterfaceUnmarshaler.
func (b *ByteSize) UnmarshalYAML(unmarshal func(any) error) error {
	parsed, err := decodeScalar(unmarshal, ParseByteSize)
	if err != nil {
		return err
	}
	*b = parsed
	return nil
}

// MarshalYAML implements yaml.InterfaceMarshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// MarshalJSON writes b as a string such as "1MiB".
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads a number of bytes or a string such as "1MiB".
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if f, ok := v.(float64); ok {
		v = strconv.FormatFloat(f, 'f', -1, 64)
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("a size must be a number or a string such as \"1MiB\", not %s", data)
	}
	parsed, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = parsed
	return nil
}

// JSONSchema describes ByteSize for github.com/invopop/jsonschema.
func (ByteSize) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{
		OneOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: "0"},
			{Type: "string", Pattern: byteSizePattern},
		},
		Description: "A size: a whole number of bytes, or a number with a unit: KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)",
		Examples:    []any{"512KiB", "1MiB", "2GB", 1048576},
	}
}

// scalarText turns a decoded YAML scalar back into its text so that strings
// and numbers go through one parser.
func scalarText(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case map[string]any, []any:
		return "", fmt.Errorf("expected a single value, not %T", v)
	default:
		return fmt.Sprint(v), nil
	}
}

// decodeScalar reads a YAML scalar as text and parses it.
func decodeScalar[T any](unmarshal func(any) error, parse func(string) (T, error)) (T, error) {
	var zero T
	var v any
	if err := unmarshal(&v); err != nil {
		return zero, err
	}
	s, err := scalarText(v)
	if err != nil {
		return zero, err
	}
	return parse(s)
}
