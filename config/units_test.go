package config

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"500ms", 500 * time.Millisecond},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"72h", 72 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{"2.5s", 2500 * time.Millisecond},
		{"10us", 10 * time.Microsecond},
		{"10µs", 10 * time.Microsecond},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.D() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.D(), err, tc.want)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"", `"" is not a duration`},
		{"72", `"72" has no unit`},
		{"1.5", `"1.5" has no unit`},
		{"-5s", `"-5s" is negative`},
		{"5 s", `"5 s" is not a duration`},
		{"3 days", `"3 days" is not a duration`},
		{"1w", `"1w" is not a duration`},
		{"h", `"h" is not a duration`},
		{"forever", `"forever" is not a duration`},
		{"200000000d", `"200000000d" is too long`},
		{"106751d106751d", `"106751d106751d" is too long`},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseDuration(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "0s",
		500 * time.Millisecond:        "500ms",
		90 * time.Second:              "1m30s",
		10 * time.Minute:              "10m",
		90 * time.Minute:              "1h30m",
		72 * time.Hour:                "72h",
		time.Hour + time.Second:       "1h0m1s",
		168*time.Hour + 5*time.Minute: "168h5m",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back.D() != d {
			t.Errorf("String() of %v does not parse back: %v, %v", d, back, err)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1048576", 1 << 20},
		{"1B", 1},
		{"1KB", 1000},
		{"1KiB", 1024},
		{"512KiB", 512 << 10},
		{"1MB", 1000 * 1000},
		{"1MiB", 1 << 20},
		{"2GiB", 2 << 30},
		{"1GB", 1000 * 1000 * 1000},
		{"1TiB", 1 << 40},
		{"1 MiB", 1 << 20},
		{"1.5KiB", 1536},
		{"0.5GB", 500 * 1000 * 1000},
	} {
		got, err := ParseByteSize(tc.in)
		if err != nil || int64(got) != tc.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, int64(got), err, tc.want)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"", `"" is not a size`},
		{"-1", `"-1" is negative`},
		{"1 megabyte", `"1 megabyte" is not a size`},
		{"1mb", `"1mb" is not a size`},
		{"1M", `"1M" is not a size`},
		{"1.5", `"1.5" is not a size`},
		{"1.5B", `"1.5B" is not a whole number of bytes`},
		{"99999999999999999999", `"99999999999999999999" is too large`},
		{"9000000TiB", `"9000000TiB" is too large`},
		{"9000000.5TiB", `"9000000.5TiB" is too large`},
	} {
		_, err := ParseByteSize(tc.in)
		if err == nil || err.Error() != tc.err {
			t.Errorf("ParseByteSize(%q) error = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{
		0:              "0",
		1:              "1",
		1500:           "1500",
		KiB:            "1KiB",
		MiB:            "1MiB",
		64 * MiB:       "64MiB",
		2 * GB:         "2GB",
		1536:           "1536",
		3 * KiB * 1000: "3000KiB",
	} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", b, got, want)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("String() of %d does not parse back: %v, %v", b, back, err)
		}
	}
}

// units is a struct with both types, decoded the way Parse decodes.
type units struct {
	D Duration `yaml:"d" json:"d"`
	B ByteSize `yaml:"b" json:"b"`
}

func TestUnitsYAML(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want units
	}{
		{"d: 7d\nb: 1MiB\n", units{Duration(7 * 24 * time.Hour), MiB}},
		{"d: '90s'\nb: 1048576\n", units{Duration(90 * time.Second), MiB}},
		{"d: 0\nb: \"2GB\"\n", units{0, 2 * GB}},
	} {
		var got units
		if err := yaml.Unmarshal([]byte(tc.in), &got); err != nil || got != tc.want {
			t.Errorf("yaml %q = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"d: 90\n", "d: [1s]\n", "b: 1 megabyte\n", "b: -5\n", "b: {a: 1}\n"} {
		var got units
		if err := yaml.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("yaml %q = %+v, want an error", in, got)
		}
	}
	out, err := yaml.Marshal(units{Duration(72 * time.Hour), 512 * KiB})
	if err != nil || string(out) != "d: 72h\nb: 512KiB\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
}

func TestUnitsJSON(t *testing.T) {
	out, err := json.Marshal(units{Duration(90 * time.Minute), MiB})
	if err != nil || string(out) != `{"d":"1h30m","b":"1MiB"}` {
		t.Errorf("json.Marshal = %s, %v", out, err)
	}
	for _, tc := range []struct {
		in   string
		want units
	}{
		{`{"d":"1h30m","b":"1MiB"}`, units{Duration(90 * time.Minute), MiB}},
		{`{"d":"7d","b":1048576}`, units{Duration(7 * 24 * time.Hour), MiB}},
	} {
		var got units
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil || got != tc.want {
			t.Errorf("json %s = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`{"d":90}`, `{"d":"90"}`, `{"b":"1 megabyte"}`, `{"b":-1}`, `{"b":1.5}`, `{"b":true}`} {
		var got units
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("json %s = %+v, want an error", in, got)
		}
	}
}
