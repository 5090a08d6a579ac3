package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluice-data/sluice"
)

// pgHint is the shape of a PostgreSQL warehouse.url.
const pgHint = "postgres://user:password@host:5432/database (a search_path parameter picks the schema)"

// unavailableSections are top-level keys of the config shape (DESIGN.md) whose
// features this version of sluice does not have yet. A file that uses them is
// rejected rather than silently half-run.
var unavailableSections = []string{"sinks"}

// sourceTypes are the source types of the config shape; implementedSources
// are the ones this version runs (the HTTP collector is always on besides).
var (
	sourceTypes        = []string{"syslog", "file", "postgres_cdc"}
	implementedSources = []string{"syslog", "file", "postgres_cdc"}
)

// unavailable reports and removes the unavailable sections of the top-level
// mapping; empty ones are accepted.
func (l *loader) unavailable(root *ast.MappingNode) {
	kept := root.Values[:0:0]
	for _, kv := range root.Values {
		key := keyString(kv.Key)
		if !slices.Contains(unavailableSections, key) {
			kept = append(kept, kv)
			continue
		}
		if !isEmpty(l.resolve(kv.Value)) {
			l.add(kv.Key, key, fmt.Sprintf("%s are not available in this version of sluice", key),
				fmt.Sprintf("remove the %s section to run this file", key))
		}
	}
	root.Values = kept
}

// isEmpty reports whether a node is null, {} or [].
func isEmpty(n ast.Node) bool {
	switch n := n.(type) {
	case nil, *ast.NullNode:
		return true
	case *ast.MappingNode:
		return len(n.Values) == 0
	case *ast.SequenceNode:
		return len(n.Values) == 0
	}
	return false
}

// validate checks the meaning of a decoded, defaulted file. Values that came
// from defaults are valid, so every problem has a position in the file.
func (l *loader) validate(c *Config) {
	if strings.Contains(c.DataDir, "://") {
		l.addAt("data_dir", fmt.Sprintf("data_dir must be a local directory, not %q", c.DataDir),
			"write a path such as ./sluice-data; the lake alone can live elsewhere (lake.url)")
	}

	l.checkAddr("http.collector", c.HTTP.Collector, "127.0.0.1:8080")
	l.checkAddr("http.api", c.HTTP.API, "127.0.0.1:8081")
	if c.HTTP.MaxBody < 1*KiB || c.HTTP.MaxBody > 64*MiB {
		l.addAt("http.max_body", fmt.Sprintf("http.max_body is %s; it must be between 1KiB and 64MiB", c.HTTP.MaxBody),
			"the default is 1MiB")
	}
	if c.HTTP.MaxEvents < 1 {
		l.addAt("http.max_events", fmt.Sprintf("http.max_events is %d; it must be at least 1", c.HTTP.MaxEvents),
			"the default is 10000")
	}
	if c.Auth.Token == "" && !isLoopback(c.HTTP.API) {
		l.addAt("http.api", fmt.Sprintf("http.api listens on %s, beyond this machine, but auth.token is empty", c.HTTP.API),
			"set auth.token (e.g. token: ${SLUICE_TOKEN}) or listen on 127.0.0.1")
	}

	if c.HTTP.Cookie.Expiration <= 0 {
		l.addAt("http.cookie.expiration", "http.cookie.expiration must be greater than 0", "the default is 365d")
	}
	if !slices.Contains([]string{"None", "Lax", "Strict"}, c.HTTP.Cookie.SameSite) {
		l.addAt("http.cookie.same_site", fmt.Sprintf("http.cookie.same_site is %q; write None, Lax or Strict", c.HTTP.Cookie.SameSite),
			"None (the default) lets trackers on other sites send the cookie")
	}

	l.checkBus(c.Bus.URL)

	for _, name := range sortedKeys(c.Sources) {
		l.checkSource(name, c.Sources[name])
	}
	l.checkSharedCDC(c)

	for _, name := range sortedKeys(c.Streams) {
		path := "streams." + name
		if _, ok := defaultRetention[name]; !ok && !slices.Contains(c.SourceStreams(), name) {
			hint := "the streams are " + strings.Join(sluice.Streams, ", ")
			if s := suggest(name, sluice.Streams); s != "" {
				hint = fmt.Sprintf("did you mean %s? %s", s, hint)
			}
			l.addAtKey(path, fmt.Sprintf("unknown stream %q", name), hint)
			continue
		}
		if r := c.Streams[name].Retention; r <= 0 {
			l.addAt(path+".retention", fmt.Sprintf("%s.retention is %s; it must be greater than 0", path, r),
				fmt.Sprintf("write how long %s keeps messages, e.g. %s", name, defaultRetention[sluice.StreamLogs]))
		}
	}

	if c.Enrich.DedupeWindow <= 0 {
		l.addAt("enrich.dedupe_window", "enrich.dedupe_window must be greater than 0",
			"the default is 10m; duplicates are dropped only within this window")
	}

	if u := c.Enrich.Iglu.Unknown; u != "accept" && u != "bad" {
		l.addAt("enrich.iglu.unknown", fmt.Sprintf("enrich.iglu.unknown is %q; write accept or bad", u),
			"accept (the default) keeps data whose schema no registry holds; bad makes it a schema_violation bad row")
	}
	for i, d := range c.Enrich.Iglu.Registries {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			l.addAt(fmt.Sprintf("enrich.iglu.registries[%d]", i), fmt.Sprintf("Iglu registry %q is not a directory", d),
				"give a folder that holds schemas/<vendor>/<name>/jsonschema/<version> files")
		}
	}

	if m := c.Semantic.Models; m != "" {
		if !filepath.IsAbs(m) {
			c.Semantic.Models = filepath.Join(filepath.Dir(l.file), m)
		}
		if st, err := os.Stat(c.Semantic.Models); err != nil || !st.IsDir() {
			l.addAt("semantic.models", fmt.Sprintf("semantic.models %q is not a directory", m),
				"give the folder of the model files (*.yml), relative to this file, e.g. ./models")
		}
	}

	if d := c.Dashboards.Dir; d != "" {
		if !filepath.IsAbs(d) {
			c.Dashboards.Dir = filepath.Join(filepath.Dir(l.file), d)
		}
		if st, err := os.Stat(c.Dashboards.Dir); err != nil || !st.IsDir() {
			l.addAt("dashboards.dir", fmt.Sprintf("dashboards.dir %q is not a directory", d),
				"give the folder of the dashboard files (*.yml), relative to this file, e.g. ./dashboards")
		}
	}

	l.checkLakeURL(c.Lake.URL)
	l.validatePipelines(c)
	l.validateJobs(c)
	l.validateRollups(c)
	for _, table := range sortedKeys(c.Lake.Retention) {
		path := "lake.retention." + table
		tables := append(slices.Clone(sluice.Streams[1:]), c.SourceStreams()...)
		if !slices.Contains(tables, table) {
			l.addAtKey(path, fmt.Sprintf("no table %q in the lake", table), "the tables are "+strings.Join(tables, ", "))
			continue
		}
		if d := c.Lake.Retention[table]; d < Duration(time.Hour) {
			l.addAt(path, fmt.Sprintf("%s is %s; keep a table at least 1h", path, d), "e.g. 400d; events arriving later than the retention are deleted with their partition")
		}
	}
	if c.Lake.FlushInterval.D() < 100*time.Millisecond {
		l.addAt("lake.flush_interval", fmt.Sprintf("lake.flush_interval is %s; it must be at least 100ms", c.Lake.FlushInterval),
			"the default is 5s; very short intervals write many tiny Parquet files")
	}
	if cp := c.Lake.Compaction; cp.Enabled {
		if cp.Interval.D() < time.Second {
			l.addAt("lake.compaction.interval", fmt.Sprintf("lake.compaction.interval is %s; it must be at least 1s", cp.Interval), "the default is 10m")
		}
		if cp.After < 0 || cp.Grace < 0 {
			l.addAt("lake.compaction", "lake.compaction.after and .grace cannot be negative", "the defaults are 1h and 2m")
		}
		if cp.TargetBytes < 1*MiB {
			l.addAt("lake.compaction.target_bytes", fmt.Sprintf("lake.compaction.target_bytes is %s; it must be at least 1MiB", cp.TargetBytes), "the default is 256MiB")
		}
	}
	if sc := c.Semantic.Cache; sc.Enabled {
		if sc.MaxAge.D() <= 0 {
			l.addAt("semantic.cache.max_age", fmt.Sprintf("semantic.cache.max_age is %s; it must be more than 0", sc.MaxAge), "the default is 5m; to serve no answer from the cache, set semantic.cache.enabled: false")
		}
		if sc.Size < 1*MiB {
			l.addAt("semantic.cache.size", fmt.Sprintf("semantic.cache.size is %s; it must be at least 1MiB", sc.Size), "the default is 64MiB")
		}
	}
	if c.Lake.MaxBytes < 64*KiB || c.Lake.MaxBytes > 4*GiB {
		l.addAt("lake.max_bytes", fmt.Sprintf("lake.max_bytes is %s; it must be between 64KiB and 4GiB", c.Lake.MaxBytes),
			"the default is 256MiB; the archiver holds this much in memory (twice, while it writes)")
	}
	if c.Lake.MaxRows < 1 {
		l.addAt("lake.max_rows", fmt.Sprintf("lake.max_rows is %d; it must be at least 1", c.Lake.MaxRows),
			"the default is 200000")
	}

	switch u := c.Warehouse.URL; {
	case u == "duckdb":
	case c.WarehouseIsPostgres():
		// Parsed as the engine will parse it (pgx, like libpq); the error
		// shows the URL with its password masked.
		if _, err := pgconn.ParseConfig(u); err != nil {
			l.addAt("warehouse.url", "warehouse.url is not a PostgreSQL URL: "+err.Error(), pgHint)
		}
	default:
		l.addAt("warehouse.url", fmt.Sprintf("unknown warehouse %q", u), "use warehouse.url: duckdb (the default) or "+pgHint)
	}
}

// checkAddr checks a listen address.
func (l *loader) checkAddr(path, addr, example string) {
	hint := fmt.Sprintf("write host:port, e.g. %s, or :%s for every interface", example, example[strings.LastIndexByte(example, ':')+1:])
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		l.addAt(path, fmt.Sprintf("%s: %q is not host:port", path, addr), hint)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		l.addAt(path, fmt.Sprintf("%s: port %q is not a number from 0 to 65535", path, port), hint)
	}
}

// isLoopback reports whether a listen address is reachable from this machine
// only. An unparsable address counts as loopback: checkAddr reports it.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkBus checks bus.url: embedded, or a comma-separated list of NATS URLs.
func (l *loader) checkBus(u string) {
	if u == "embedded" {
		return
	}
	for _, part := range strings.Split(u, ",") {
		p, err := url.Parse(strings.TrimSpace(part))
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Host == "" {
			l.addAt("bus.url", fmt.Sprintf("bus.url %q is neither embedded nor a nats:// or tls:// URL", u),
				"use embedded (one machine, the default) or nats://host:4222 for an external NATS cluster")
			return
		}
	}
}

// checkSource checks one entry of sources.
func (l *loader) checkSource(name string, s Source) {
	path := "sources." + name
	types := strings.Join(sourceTypes, ", ")
	switch {
	case s.Type == "":
		l.addAtKey(path, fmt.Sprintf("source %q has no type", name), "set type: to one of "+types)
	case s.Type == "syslog":
		l.checkSyslog(path, s)
	case s.Type == "file":
		l.checkFile(path, s)
	case s.Type == "postgres_cdc":
		l.checkPostgresCDC(path, s)
	case slices.Contains(sourceTypes, s.Type) && !slices.Contains(implementedSources, s.Type):
		l.addAt(path+".type", fmt.Sprintf("source type %s is not available in this version of sluice", s.Type),
			fmt.Sprintf("remove %s; the HTTP collector (http.collector) is always on", path))
	default:
		hint := "the source types are " + types
		if t := suggest(s.Type, sourceTypes); t != "" {
			hint = fmt.Sprintf("did you mean %s? %s", t, hint)
		}
		l.addAt(path+".type", fmt.Sprintf("unknown source type %q", s.Type), hint)
	}
}

// checkSyslog checks a syslog source: listen is udp://host:port or
// tcp://host:port; the keys of other source types don't apply.
func (l *loader) checkSyslog(path string, s Source) {
	hint := `write listen: "udp://127.0.0.1:5514", "tcp://127.0.0.1:5514" or "tls://127.0.0.1:6514"`
	u, err := url.Parse(s.Listen)
	switch {
	case s.Listen == "":
		l.addAtKey(path, "a syslog source needs listen", hint)
	case err != nil || (u.Scheme != "udp" && u.Scheme != "tcp" && u.Scheme != "tls") || u.Host == "":
		l.addAt(path+".listen", fmt.Sprintf("listen %q is not udp://, tcp:// or tls://host:port", s.Listen), hint)
	case u.Scheme == "tls" && (s.TLS.Cert == "" || s.TLS.Key == ""):
		l.addAtKey(path, "a tls:// syslog source needs tls.cert and tls.key", "add tls: {cert: server.pem, key: server-key.pem}")
	case u.Scheme != "tls" && (s.TLS.Cert != "" || s.TLS.Key != ""):
		l.addAt(path+".tls", "tls applies only to a tls:// listener", "write listen: tls://host:port, or remove tls")
	default:
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			l.addAt(path+".listen", fmt.Sprintf("listen %q has no port", s.Listen), hint)
		}
	}
	for key, set := range map[string]bool{"paths": len(s.Paths) > 0, "parse": s.Parse != "", "url": s.URL != "", "tables": len(s.Tables) > 0,
		"pattern": s.Pattern != "", "multiline": s.Multiline != "", "slot": s.Slot != "", "publication": s.Publication != ""} {
		if set {
			l.addAt(path+"."+key, fmt.Sprintf("%s does not apply to a syslog source", key), "remove it")
		}
	}
	if s.Stream != "" && s.Stream != "logs" {
		l.addAt(path+".stream", fmt.Sprintf("syslog messages go to the logs stream, not %q", s.Stream), "remove stream or write stream: logs")
	}
}

// ParseFormats are the record formats of file sources.
var ParseFormats = []string{"plain", "json", "nginx_combined", "apache_combined", "apache_common", "regex"}

// streamName is what a stream of one's own may be called: it names a NATS
// stream, a subject token and a lake table.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var streamName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// checkFile checks a file source.
func (l *loader) checkFile(path string, s Source) {
	if name := strings.TrimPrefix(path, "sources."); !sourceName.MatchString(name) {
		l.addAtKey(path, fmt.Sprintf("file source name %q is not usable", name), "use letters, digits, _ and -: it names the tailer's position on the bus")
	}
	if len(s.Paths) == 0 {
		l.addAtKey(path, "a file source needs paths", `write paths: ["/var/log/nginx/access.log"] (globs such as /var/log/app/*.log follow new files)`)
	}
	for i, p := range s.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			l.addAt(fmt.Sprintf("%s.paths[%d]", path, i), fmt.Sprintf("%q is not a valid glob: %v", p, err), "see https://pkg.go.dev/path/filepath#Match")
		}
	}
	if s.Parse != "" && !slices.Contains(ParseFormats, s.Parse) {
		hint := "the formats are " + strings.Join(ParseFormats, ", ")
		if f := suggest(s.Parse, ParseFormats); f != "" {
			hint = fmt.Sprintf("did you mean %s? %s", f, hint)
		}
		l.addAt(path+".parse", fmt.Sprintf("unknown format %q", s.Parse), hint)
	}
	switch {
	case s.Parse == "regex" && s.Pattern == "":
		l.addAtKey(path, "parse: regex needs pattern", `add pattern: '^(?P<level>\w+) (?P<message>.*)$'`)
	case s.Parse != "regex" && s.Pattern != "":
		l.addAt(path+".pattern", "pattern applies only to parse: regex", "write parse: regex, or remove pattern")
	case s.Pattern != "":
		if re, err := regexp.Compile(s.Pattern); err != nil {
			l.addAt(path+".pattern", fmt.Sprintf("pattern is not a regular expression: %v", err), "Go (RE2) syntax, named groups as (?P<name>…)")
		} else if len(re.SubexpNames()) < 2 || !slices.ContainsFunc(re.SubexpNames(), func(n string) bool { return n != "" }) {
			l.addAt(path+".pattern", "pattern has no named groups", "name what to keep: (?P<name>…)")
		}
	}
	if s.Multiline != "" {
		if _, err := regexp.Compile(s.Multiline); err != nil {
			l.addAt(path+".multiline", fmt.Sprintf("multiline is not a regular expression: %v", err), `e.g. '^\d{4}-\d{2}-\d{2}' for records that start with a date`)
		}
	}
	switch {
	case s.Stream == "" || s.Stream == sluice.StreamLogs:
	case slices.Contains(sluice.Streams, s.Stream):
		l.addAt(path+".stream", fmt.Sprintf("records cannot go to the %s stream", s.Stream), "write stream: logs, or a name of your own such as nginx")
	case !streamName.MatchString(s.Stream):
		l.addAt(path+".stream", fmt.Sprintf("stream name %q is not usable", s.Stream), "use lower-case letters, digits and _, starting with a letter")
	}
	for key, set := range map[string]bool{"listen": s.Listen != "", "tls": s.TLS.Cert != "" || s.TLS.Key != "", "url": s.URL != "", "tables": len(s.Tables) > 0,
		"slot": s.Slot != "", "publication": s.Publication != ""} {
		if set {
			l.addAt(path+"."+key, fmt.Sprintf("%s does not apply to a file source", key), "remove it")
		}
	}
}

// SourceStreams are the streams of its own that sources write to, besides
// the built-in ones, sorted.
func (c *Config) SourceStreams() []string {
	var out []string
	for _, s := range c.Sources {
		if s.Stream != "" && !slices.Contains(sluice.Streams, s.Stream) && !slices.Contains(out, s.Stream) {
			out = append(out, s.Stream)
		}
	}
	slices.Sort(out)
	return out
}

// s3Params are the query parameters of an s3:// lake URL: those
// gocloud.dev's s3blob reads.
var s3Params = []string{"endpoint", "region", "use_path_style", "disable_https", "profile", "anonymous",
	"accelerate", "dualstack", "fips", "hostname_immutable", "rate_limiter_capacity", "role", "ssetype", "kmskeyid",
	"request_checksum_calculation", "response_checksum_validation", "s3ForcePathStyle", "awssdk"}

// checkLakeURL checks lake.url: empty (<data_dir>/lake), a directory (a path
// or file:///path) or s3://bucket/prefix?params. Whether the bucket exists
// and the credentials work is checked when sluice starts.
func (l *loader) checkLakeURL(u string) {
	const s3Hint = "write s3://bucket/prefix?endpoint=http://host:port&region=us-east-1&use_path_style=true; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	switch {
	case strings.HasPrefix(u, "s3://"):
		p, err := url.Parse(u)
		switch {
		case err != nil:
			l.addAt("lake.url", fmt.Sprintf("lake.url %q is not a URL: %v", u, err), s3Hint)
		case p.User != nil:
			l.addAt("lake.url", "lake.url must not hold credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment instead")
		case p.Host == "":
			l.addAt("lake.url", fmt.Sprintf("lake.url %q names no bucket", u), s3Hint)
		default:
			for _, k := range sortedKeys(p.Query()) {
				if !slices.Contains(s3Params, k) {
					l.addAt("lake.url", fmt.Sprintf("lake.url has an unknown parameter %q", k), "the parameters are "+strings.Join(s3Params[:6], ", ")+" and others of gocloud.dev's s3blob")
				}
			}
		}
	case strings.HasPrefix(u, "file://"):
		if !strings.HasPrefix(u, "file:///") {
			l.addAt("lake.url", fmt.Sprintf("lake.url %q is not a local file URL", u), "write file:///absolute/path, or just the path")
		}
	case strings.Contains(u, "://"):
		l.addAt("lake.url", fmt.Sprintf("lake.url must be a directory path or s3://, not %q", u),
			"write a path such as ./sluice-data/lake, or s3://bucket/prefix?endpoint=…&region=…")
	}
}

// CheckOverrides checks what ApplyOverrides set, with the same rules as the
// file: listen addresses are host:port, and the API leaves loopback only with
// a token.
func (c *Config) CheckOverrides() error {
	for _, a := range []struct{ flag, addr string }{{"--collector-addr", c.HTTP.Collector}, {"--api-addr", c.HTTP.API}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s %q is not host:port", a.flag, a.addr)
		}
	}
	if c.Auth.Token == "" && !isLoopback(c.HTTP.API) {
		return fmt.Errorf("the API at %s would be reachable from other machines without a token: set auth.token (e.g. token: ${SLUICE_TOKEN}) or listen on 127.0.0.1", c.HTTP.API)
	}
	var l loader
	l.checkLakeURL(c.Lake.URL)
	if len(l.errs) > 0 {
		return fmt.Errorf("--lake: %s (%s)", l.errs[0].Message, l.errs[0].Hint)
	}
	return nil
}
