package config

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
)

// defaultRetention is how long each built-in stream keeps messages unless
// streams.<name>.retention says otherwise.
var defaultRetention = map[string]Duration{
	sluice.StreamRaw:    Duration(72 * time.Hour),
	sluice.StreamEvents: Duration(168 * time.Hour),
	sluice.StreamBad:    Duration(720 * time.Hour),
	sluice.StreamLogs:   Duration(168 * time.Hour),
}

// Default returns the configuration used when there is no file: the built-in
// pipeline on one machine, listening on loopback only.
func Default() *Config {
	c := &Config{
		DataDir: "./sluice-data",
		HTTP: HTTP{
			Collector: "127.0.0.1:8080",
			API:       "127.0.0.1:8081",
			MaxBody:   1 * MiB,
			MaxEvents: 10000,
			Cookie:    Cookie{Enabled: true, Name: "sp", Expiration: Duration(365 * 24 * time.Hour), Secure: true, SameSite: "None"},
		},
		Bus:     Bus{URL: "embedded"},
		Streams: map[string]Stream{},
		Enrich:  Enrich{DedupeWindow: Duration(10 * time.Minute), UserAgent: true, Campaign: true, Referrer: true, Iglu: Iglu{Unknown: "accept"}},
		Lake: Lake{FlushInterval: Duration(5 * time.Second), MaxRows: 200000, MaxBytes: 256 * MiB,
			Compaction: Compaction{Enabled: true, After: Duration(time.Hour), Interval: Duration(10 * time.Minute), TargetBytes: 256 * MiB, Grace: Duration(2 * time.Minute)}},
		Warehouse: Warehouse{URL: "duckdb"},
		Semantic:  Semantic{Cache: SemanticCache{Enabled: true, MaxAge: Duration(5 * time.Minute), Size: 64 * MiB}},
	}
	for name, retention := range defaultRetention {
		c.Streams[name] = Stream{Retention: retention}
	}
	return c
}

// fillDefaults completes a decoded file. Empty strings take their default
// (so that ${VAR:-} can mean "the default"); numbers and durations take it
// only when the key is absent, because an explicit 0 is a mistake that
// validation reports.
func fillDefaults(c *Config, set func(path string) bool) {
	d := Default()
	defaultString(&c.DataDir, d.DataDir)
	defaultString(&c.HTTP.Collector, d.HTTP.Collector)
	defaultString(&c.HTTP.API, d.HTTP.API)
	defaultString(&c.Bus.URL, d.Bus.URL)
	defaultString(&c.Warehouse.URL, d.Warehouse.URL)
	if !set("http.max_body") {
		c.HTTP.MaxBody = d.HTTP.MaxBody
	}
	if !set("http.max_events") {
		c.HTTP.MaxEvents = d.HTTP.MaxEvents
	}
	if !set("enrich.dedupe_window") {
		c.Enrich.DedupeWindow = d.Enrich.DedupeWindow
	}
	defaultString(&c.HTTP.Cookie.Name, d.HTTP.Cookie.Name)
	defaultString(&c.HTTP.Cookie.SameSite, d.HTTP.Cookie.SameSite)
	defaultString(&c.Enrich.Iglu.Unknown, d.Enrich.Iglu.Unknown)
	if !set("http.cookie.expiration") {
		c.HTTP.Cookie.Expiration = d.HTTP.Cookie.Expiration
	}
	for path, field := range map[string]*bool{"enrich.useragent": &c.Enrich.UserAgent, "enrich.campaign": &c.Enrich.Campaign, "enrich.referrer": &c.Enrich.Referrer,
		"http.cookie.enabled": &c.HTTP.Cookie.Enabled, "http.cookie.secure": &c.HTTP.Cookie.Secure} {
		if !set(path) {
			*field = true
		}
	}
	if !set("lake.flush_interval") {
		c.Lake.FlushInterval = d.Lake.FlushInterval
	}
	if !set("lake.max_rows") {
		c.Lake.MaxRows = d.Lake.MaxRows
	}
	if !set("lake.max_bytes") {
		c.Lake.MaxBytes = d.Lake.MaxBytes
	}
	if !set("lake.compaction.enabled") {
		c.Lake.Compaction.Enabled = true
	}
	for _, f := range []struct {
		path     string
		to, from *Duration
	}{
		{"lake.compaction.after", &c.Lake.Compaction.After, &d.Lake.Compaction.After},
		{"lake.compaction.interval", &c.Lake.Compaction.Interval, &d.Lake.Compaction.Interval},
		{"lake.compaction.grace", &c.Lake.Compaction.Grace, &d.Lake.Compaction.Grace},
	} {
		if !set(f.path) {
			*f.to = *f.from
		}
	}
	if !set("semantic.cache.enabled") {
		c.Semantic.Cache.Enabled = true
	}
	if !set("semantic.cache.max_age") {
		c.Semantic.Cache.MaxAge = d.Semantic.Cache.MaxAge
	}
	if !set("semantic.cache.size") {
		c.Semantic.Cache.Size = d.Semantic.Cache.Size
	}
	if !set("lake.compaction.target_bytes") {
		c.Lake.Compaction.TargetBytes = d.Lake.Compaction.TargetBytes
	}
	if len(c.Lake.Retention) == 0 {
		c.Lake.Retention = nil
	}
	if len(c.Enrich.Iglu.Registries) == 0 {
		c.Enrich.Iglu.Registries = nil
	}
	if len(c.Pipelines) == 0 {
		c.Pipelines = nil
	}
	if len(c.Sources) == 0 {
		c.Sources = nil // "sources: {}" is the same as no sources
	}
	if c.Streams == nil {
		c.Streams = map[string]Stream{}
	}
	cdcDefaults(c)
	for _, name := range c.SourceStreams() {
		// A stream of a source's own keeps what logs keeps by default.
		d.Streams[name] = Stream{Retention: defaultRetention[sluice.StreamLogs]}
	}
	for name, def := range d.Streams {
		s, ok := c.Streams[name]
		if !ok {
			s = def
		} else if !set("streams." + name + ".retention") {
			s.Retention = def.Retention
		}
		c.Streams[name] = s
	}
}

func defaultString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// LakeURL is where the lake lives, a directory or s3://bucket/prefix?…:
// lake.url, or <data_dir>/lake when lake.url is empty (the default), so that
// it follows an overridden data dir.
func (c *Config) LakeURL() string {
	if c.Lake.URL == "" {
		return filepath.Join(c.DataDir, "lake")
	}
	return c.Lake.URL
}

// LakeIsRemote reports a lake in an object store (s3://), not a directory.
func (c *Config) LakeIsRemote() bool { return strings.HasPrefix(c.Lake.URL, "s3://") }

// WarehouseIsPostgres reports PostgreSQL as the warehouse (warehouse.url
// postgres://… or postgresql://…), not DuckDB.
func (c *Config) WarehouseIsPostgres() bool {
	return strings.HasPrefix(c.Warehouse.URL, "postgres://") || strings.HasPrefix(c.Warehouse.URL, "postgresql://")
}

// LakeDir is the local directory of the lake: the lake itself when it is a
// directory (lake.url as a path or file:///path), and <data_dir>/lake-cache,
// a local copy for the warehouse to read, when it is in an object store.
func (c *Config) LakeDir() string {
	switch u := c.LakeURL(); {
	case c.LakeIsRemote():
		return filepath.Join(c.DataDir, "lake-cache")
	case strings.HasPrefix(u, "file://"):
		return strings.TrimPrefix(u, "file://")
	default:
		return u
	}
}

// ApplyOverrides applies the command-line flags --data, --collector-addr and
// --api-addr; an empty value leaves the setting alone. They are not
// validated: they are the caller's responsibility (tests pass 127.0.0.1:0).
func (c *Config) ApplyOverrides(dataDir, collectorAddr, apiAddr string) {
	if dataDir != "" {
		c.DataDir = dataDir
	}
	if collectorAddr != "" {
		c.HTTP.Collector = collectorAddr
	}
	if apiAddr != "" {
		c.HTTP.API = apiAddr
	}
}
