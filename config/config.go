// Package config reads sluice.yaml: one YAML file that declares sources,
// streams, pipelines, sinks, the lake, the warehouse, jobs, HTTP listeners and
// auth. It promises that a Config it returns is complete (every default filled
// in) and valid; every problem it finds is reported with file:line:column and a
// hint, all at once rather than one per run.
//
// Reading a file goes in four steps, one file each:
//
//   - env.go: ${VAR} and ${VAR:-default} are replaced in the text ($${ is a
//     literal ${; comment lines are left alone), keeping track of positions.
//   - shape.go: the YAML tree is checked against the types below, by their
//     yaml tags: unknown keys, values of the wrong kind, bad durations and
//     sizes. Then it is decoded into a Config.
//   - defaults.go: what the file leaves out takes its default (Default).
//   - validate.go: what the values mean: addresses, URLs, limits, and the
//     features this version of sluice does not have yet.
//
// schema.go generates the JSON Schema of the same types (sluice.schema.json)
// for editors.
package config

import "time"

// Config is the whole sluice.yaml. Field names (yaml tags) are a contract:
// users' files and tests use them.
type Config struct {
	DataDir    string              `yaml:"data_dir" json:"data_dir,omitempty" jsonschema:"description=Directory for the bus store\\, the lake (unless s3://)\\, the warehouse file and state. Default ./sluice-data"`
	HTTP       HTTP                `yaml:"http" json:"http,omitempty"`
	Auth       Auth                `yaml:"auth" json:"auth,omitempty"`
	Bus        Bus                 `yaml:"bus" json:"bus,omitempty"`
	Sources    map[string]Source   `yaml:"sources" json:"sources,omitempty" jsonschema:"description=Extra sources by name. The HTTP collector is always on."`
	Streams    map[string]Stream   `yaml:"streams" json:"streams,omitempty" jsonschema:"description=Per-stream settings for raw\\, events\\, bad and logs"`
	Enrich     Enrich              `yaml:"enrich" json:"enrich,omitempty"`
	Pipelines  map[string]Pipeline `yaml:"pipelines" json:"pipelines,omitempty" jsonschema:"description=User stream pipelines: name -> {from\\, steps\\, to}"`
	Sinks      map[string]any      `yaml:"sinks" json:"sinks,omitempty" jsonschema:"description=Sinks (not available in this version)"`
	Lake       Lake                `yaml:"lake" json:"lake,omitempty"`
	Warehouse  Warehouse           `yaml:"warehouse" json:"warehouse,omitempty"`
	Jobs       map[string]Job      `yaml:"jobs" json:"jobs,omitempty" jsonschema:"description=Batch jobs: name -> {schedule\\, params\\, requires\\, output\\, sql | shell | compact\\, retries\\, timeout}"`
	Scheduler  Scheduler           `yaml:"scheduler" json:"scheduler,omitempty"`
	Rollups    map[string]Rollup   `yaml:"rollups" json:"rollups,omitempty" jsonschema:"description=Real-time rollups: name -> {from\\, filter\\, granularity\\, dimensions\\, metrics}"`
	Semantic   Semantic            `yaml:"semantic" json:"semantic,omitempty"`
	Dashboards Dashboards          `yaml:"dashboards" json:"dashboards,omitempty"`
}

// HTTP configures the two listeners and the collector's request limits.
type HTTP struct {
	Collector string `yaml:"collector" json:"collector,omitempty" jsonschema:"description=Collector listen address (public side). Default 127.0.0.1:8080"`
	API       string `yaml:"api" json:"api,omitempty" jsonschema:"description=API\\, web UI and /metrics listen address. Default 127.0.0.1:8081"`
	// MaxBody is the largest request body the collector accepts (after gzip).
	MaxBody ByteSize `yaml:"max_body" json:"max_body,omitempty" jsonschema:"description=Largest request body the collector accepts\\, e.g. 1MiB. Default 1MiB"`
	// MaxEvents is the most events one request may carry.
	MaxEvents int `yaml:"max_events" json:"max_events,omitempty" jsonschema:"description=Most events one request may carry. Default 10000"`
	// WriteKeys, when set, are the only write keys the Segment-style routes
	// accept.
	WriteKeys []string `yaml:"write_keys" json:"write_keys,omitempty" jsonschema:"description=Segment-style routes (/v1/batch\\, /v1/track …): accept only these write keys (Basic auth user name or writeKey in the body). Empty: any"`
	// Cookie is the Snowplow network user id cookie.
	Cookie Cookie `yaml:"cookie" json:"cookie,omitempty"`
}

// Cookie configures the network user id cookie that the Snowplow routes set
// (network_userid in events).
type Cookie struct {
	Enabled    bool     `yaml:"enabled" json:"enabled" jsonschema:"description=Set the cookie. Default true; false: no cookie\\, a new network user id per request"`
	Name       string   `yaml:"name" json:"name,omitempty" jsonschema:"description=Cookie name. Default sp"`
	Domain     string   `yaml:"domain" json:"domain,omitempty" jsonschema:"description=Cookie domain\\, e.g. .example.com to share it across subdomains. Default: the collector's host"`
	Expiration Duration `yaml:"expiration" json:"expiration,omitempty" jsonschema:"description=How long the cookie lives. Default 365d"`
	Secure     bool     `yaml:"secure" json:"secure" jsonschema:"description=Send the cookie over HTTPS only. Default true (browsers need it for SameSite=None; they accept it from http://localhost)"`
	SameSite   string   `yaml:"same_site" json:"same_site,omitempty" jsonschema:"enum=None,enum=Lax,enum=Strict,description=SameSite attribute. Default None (trackers on other sites)"`
}

// Auth protects the API and web UI; the collector stays public.
type Auth struct {
	Token string `yaml:"token" json:"token,omitempty" jsonschema:"description=Bearer token required by the API and UI. Empty means no auth (listen on loopback only)."`
}

// Bus selects the message bus.
type Bus struct {
	URL string `yaml:"url" json:"url,omitempty" jsonschema:"description=embedded (default) or nats://host:4222"`
}

// Source is one extra input. Type selects the kind; the other keys belong to it.
type Source struct {
	Type      string   `yaml:"type" json:"type"`
	Listen    string   `yaml:"listen" json:"listen,omitempty" jsonschema:"description=syslog: where to listen\\, e.g. udp://127.0.0.1:5514\\, tcp://127.0.0.1:5514 or tls://127.0.0.1:6514"`
	TLS       TLS      `yaml:"tls" json:"tls,omitempty" jsonschema:"description=syslog over tls://: the server certificate and key"`
	Paths     []string `yaml:"paths" json:"paths,omitempty" jsonschema:"description=file: glob patterns of the files to tail"`
	Parse     string   `yaml:"parse" json:"parse,omitempty" jsonschema:"enum=plain,enum=json,enum=nginx_combined,enum=apache_combined,enum=apache_common,enum=regex,description=file: how to parse each record: plain (default)\\, json (one object per line)\\, nginx_combined\\, apache_combined\\, apache_common\\, regex (with pattern)"`
	Pattern   string   `yaml:"pattern" json:"pattern,omitempty" jsonschema:"description=file with parse: regex: a regular expression with named groups (?P<name>…); the groups become fields\\, timestamp/time/message/host/ip fill those columns"`
	Multiline string   `yaml:"multiline" json:"multiline,omitempty" jsonschema:"description=file: a regular expression that matches the first line of a record; lines that don't match are appended to the record before (stack traces)"`
	Stream    string   `yaml:"stream" json:"stream,omitempty" jsonschema:"description=Stream (and lake table) the records go to. file: logs (default) or a name of your own\\, e.g. nginx. postgres_cdc: default the source's name"`
	URL       string   `yaml:"url" json:"url,omitempty" jsonschema:"description=postgres_cdc: the database\\, postgres://user:password@host:5432/database; the role needs REPLICATION"`
	Tables    []string `yaml:"tables" json:"tables,omitempty" jsonschema:"description=postgres_cdc: the tables to capture\\, e.g. [orders\\, billing.invoices]"`
	// Slot and Publication are what a postgres_cdc source follows in
	// PostgreSQL; sluice creates them when they are missing.
	Slot        string `yaml:"slot" json:"slot,omitempty" jsonschema:"description=postgres_cdc: the logical replication slot (pgoutput). Default sluice_<source name>"`
	Publication string `yaml:"publication" json:"publication,omitempty" jsonschema:"description=postgres_cdc: the publication of the tables. Default sluice_<source name>"`
}

// TLS is a server certificate and its key, as PEM files.
type TLS struct {
	Cert string `yaml:"cert" json:"cert,omitempty" jsonschema:"description=PEM file of the certificate (chain)"`
	Key  string `yaml:"key" json:"key,omitempty" jsonschema:"description=PEM file of the private key"`
}

// Stream holds one stream's retention.
type Stream struct {
	Retention Duration `yaml:"retention" json:"retention,omitempty" jsonschema:"description=How long messages are kept\\, e.g. 72h"`
	MaxBytes  ByteSize `yaml:"max_bytes" json:"max_bytes,omitempty" jsonschema:"description=Size cap of the stream; oldest messages go first. 0 = no cap"`
}

// Enrich configures the raw -> events stage.
type Enrich struct {
	DedupeWindow Duration `yaml:"dedupe_window" json:"dedupe_window,omitempty" jsonschema:"description=Events whose event_id was seen within this window are dropped. Default 10m"`
	// The enrichments, each switchable.
	UserAgent     bool `yaml:"useragent" json:"useragent" jsonschema:"description=Fill browser\\, os and device_class from the user agent. Default true"`
	Campaign      bool `yaml:"campaign" json:"campaign" jsonschema:"description=Columns mkt_source\\, mkt_medium\\, mkt_campaign\\, mkt_term\\, mkt_content from utm_* parameters of page_url. Default true"`
	Referrer      bool `yaml:"referrer" json:"referrer" jsonschema:"description=Columns refr_medium (search\\, social\\, internal\\, other) and refr_source from the referrer. Default true"`
	AnonymizeIP   bool `yaml:"anonymize_ip" json:"anonymize_ip" jsonschema:"description=Zero the last octet of IPv4 and the last 80 bits of IPv6 addresses. Default false"`
	WidenToString bool `yaml:"widen_to_string" json:"widen_to_string" jsonschema:"description=A field whose value has a type its column cannot widen to turns the column into VARCHAR (other values kept as their JSON text) instead of making the event a schema_violation bad row. Default false"`
	Fingerprint   bool `yaml:"fingerprint" json:"fingerprint" jsonschema:"description=Column event_fingerprint (a hash of what the client sent\\, without ids and send times); events that came without an event_id get one derived from it\\, so a retried request is deduplicated. Default false"`
	// Iglu validates self-describing JSON.
	Iglu Iglu `yaml:"iglu" json:"iglu,omitempty"`
}

// Iglu configures the schema registries that self-describing JSON (Snowplow
// events and contexts) is validated against.
type Iglu struct {
	Registries []string `yaml:"registries" json:"registries,omitempty" jsonschema:"description=Folders laid out like an Iglu static registry: schemas/<vendor>/<name>/jsonschema/<version>. Searched in order"`
	Unknown    string   `yaml:"unknown" json:"unknown,omitempty" jsonschema:"enum=accept,enum=bad,description=What to do with data whose schema no registry holds: accept it unvalidated (default) or make it a schema_violation bad row"`
}

// Lake configures where archived Parquet files go and how often.
type Lake struct {
	URL           string   `yaml:"url" json:"url,omitempty" jsonschema:"description=Where the lake lives: a directory\\, or s3://bucket/prefix?endpoint=…&region=…&use_path_style=true on any S3-compatible store (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Default <data_dir>/lake"`
	FlushInterval Duration `yaml:"flush_interval" json:"flush_interval,omitempty" jsonschema:"description=Longest time an event waits before its file is written. Default 5s"`
	MaxRows       int      `yaml:"max_rows" json:"max_rows,omitempty" jsonschema:"description=Rows that force a flush. Default 200000"`
	MaxBytes      ByteSize `yaml:"max_bytes" json:"max_bytes,omitempty" jsonschema:"description=Buffered rows (as JSON) that force a flush\\, e.g. 256MiB. Default 256MiB"`
	// Retention keeps a table's partitions (hours of event time) this long.
	Retention map[string]Duration `yaml:"retention" json:"retention,omitempty" jsonschema:"description=Per table: delete partitions (hours of event time) that ended longer ago than this\\, e.g. {events: 400d\\, logs: 30d}. Checked hourly. Default: keep everything"`
	// Compaction merges the small files of closed partitions.
	Compaction Compaction `yaml:"compaction" json:"compaction,omitempty"`
}

// Compaction configures the lake's compaction of closed partitions.
type Compaction struct {
	Enabled     bool     `yaml:"enabled" json:"enabled,omitempty" jsonschema:"description=Merge the small files of closed partitions into large files sorted by time. Default true"`
	After       Duration `yaml:"after" json:"after,omitempty" jsonschema:"description=How long after its hour ends a partition is closed (late events after that get a file of their own\\, merged by the next pass). Default 1h"`
	Interval    Duration `yaml:"interval" json:"interval,omitempty" jsonschema:"description=How often closed partitions are looked at. Default 10m"`
	TargetBytes ByteSize `yaml:"target_bytes" json:"target_bytes,omitempty" jsonschema:"description=Size compacted files aim for. Default 256MiB"`
	Grace       Duration `yaml:"grace" json:"grace,omitempty" jsonschema:"description=How long replaced files stay after the swap\\, for queries that started before it. Default 2m"`
}

// Warehouse selects the SQL engine.
type Warehouse struct {
	URL string `yaml:"url" json:"url,omitempty" jsonschema:"description=duckdb (default: <data_dir>/warehouse.duckdb) or postgres://user:password@host:5432/database: PostgreSQL\\, loaded from the lake by COPY; the SQL API and sluice sql run there"`
}

// Semantic configures the semantic layer (package semantic): the model
// files behind the explore API.
type Semantic struct {
	Models string        `yaml:"models" json:"models,omitempty" jsonschema:"description=Directory of the semantic layer's model files (*.yml\\, *.yaml: views\\, dimensions\\, measures\\, explores; see docs/semantic.md)\\, relative to this file. Read at start and on reload. Empty: no models (sluice demo then serves its web-shop model)"`
	Cache  SemanticCache `yaml:"cache" json:"cache,omitempty"`
}

// SemanticCache configures the explore API's results cache: an answer is
// served again while the warehouse's data is unchanged, for at most
// max_age (less for short "in the past" windows; docs/semantic.md).
type SemanticCache struct {
	Enabled bool     `yaml:"enabled" json:"enabled,omitempty" jsonschema:"description=Serve explore answers from the cache while the warehouse's data is unchanged. Default true. Only with DuckDB: PostgreSQL tables can change behind Sluice's back"`
	MaxAge  Duration `yaml:"max_age" json:"max_age,omitempty" jsonschema:"description=Longest time an answer is served from the cache. Default 5m"`
	Size    ByteSize `yaml:"size" json:"size,omitempty" jsonschema:"description=Memory the cached answers (their JSON) may take; the least recently used go first. Default 64MiB"`
}

// Dashboards configures the UI's dashboards (package dashboard): YAML
// files of explore queries drawn as tiles.
type Dashboards struct {
	Dir string `yaml:"dir" json:"dir,omitempty" jsonschema:"description=Directory of the dashboard files (*.yml\\, *.yaml: title\\, date filter\\, refresh\\, tiles of explore queries; see docs/ui.md)\\, relative to this file. Read at start and on reload. Empty: no dashboards (sluice demo then serves its web-shop dashboard)"`
}

// Duration is a time.Duration written as "90s", "15m", "72h" or "7d".
type Duration time.Duration

// ByteSize is a size written as 1048576, "512KiB", "1MiB", "2GB".
type ByteSize int64
