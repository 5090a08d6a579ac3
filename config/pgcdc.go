package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluice-data/sluice"
)

// The names a postgres_cdc source gives PostgreSQL objects: replication slot
// names are PostgreSQL's own rule; publications are held to unquoted
// identifiers so that no quoting is ever needed.
var (
	slotName        = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	publicationName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	// tableName is a table as PostgreSQL reads it: unquoted names (folded
	// to lower case) or "Quoted" ones, optionally schema-qualified.
	tableName = regexp.MustCompile(`^(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+")(?:\.(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"]+"))?$`)
)

const cdcURLHint = "write url: postgres://user:password@host:5432/database (keep the password out of the file: ${PGPASSWORD})"

// cdcDefaults fills what a postgres_cdc source leaves out: its stream is
// named after it, its slot and publication are sluice_<name>.
func cdcDefaults(c *Config) {
	for name, s := range c.Sources {
		if s.Type != "postgres_cdc" {
			continue
		}
		defaultString(&s.Stream, name)
		defaultString(&s.Slot, "sluice_"+name)
		defaultString(&s.Publication, "sluice_"+name)
		c.Sources[name] = s
	}
}

// CDCStreams are the streams postgres_cdc sources write to, sorted. Their
// rows are changes (sluice.ChangeColumns), not log records.
func (c *Config) CDCStreams() []string {
	var out []string
	for _, s := range c.Sources {
		if s.Type == "postgres_cdc" && !slices.Contains(out, s.Stream) {
			out = append(out, s.Stream)
		}
	}
	slices.Sort(out)
	return out
}

// checkPostgresCDC checks a postgres_cdc source. Whether the database is
// reachable, set up for logical replication and holds the tables is checked
// when sluice starts.
func (l *loader) checkPostgresCDC(path string, s Source) {
	name := strings.TrimPrefix(path, "sources.")
	switch {
	case s.URL == "":
		l.addAtKey(path, "a postgres_cdc source needs url", cdcURLHint)
	case !strings.HasPrefix(s.URL, "postgres://") && !strings.HasPrefix(s.URL, "postgresql://"):
		l.addAt(path+".url", "url is not a postgres:// URL", cdcURLHint)
	default:
		// Parsed as the source will parse it (pgx, like libpq); the error
		// shows the URL with its password masked.
		cfg, err := pgconn.ParseConfig(s.URL)
		if err != nil {
			l.addAt(path+".url", "url is not a PostgreSQL URL: "+err.Error(), cdcURLHint)
		} else if _, ok := cfg.RuntimeParams["replication"]; ok {
			l.addAt(path+".url", "url must not set replication", "remove the replication parameter: sluice opens its replication connection itself")
		}
	}

	if len(s.Tables) == 0 {
		l.addAtKey(path, "a postgres_cdc source needs tables", "write tables: [orders] (schema-qualified if not on the search_path: [billing.invoices])")
	}
	for i, t := range s.Tables {
		p := fmt.Sprintf("%s.tables[%d]", path, i)
		switch {
		case !tableName.MatchString(t):
			l.addAt(p, fmt.Sprintf("%q is not a table name", t), `write table or schema.table; quote names with capitals or other characters: '"Orders"'`)
		case slices.Contains(s.Tables[:i], t):
			l.addAt(p, fmt.Sprintf("table %s is listed twice", t), "remove one")
		}
	}

	switch {
	case slices.Contains(sluice.Streams, s.Stream):
		l.addAt(path+".stream", fmt.Sprintf("changes cannot go to the %s stream", s.Stream), "write a name of your own, or leave stream out: it defaults to the source's name")
	case !streamName.MatchString(s.Stream):
		if _, set := l.values[path+".stream"]; set {
			l.addAt(path+".stream", fmt.Sprintf("stream name %q is not usable", s.Stream), "use lower-case letters, digits and _, starting with a letter")
		} else {
			l.addAtKey(path, fmt.Sprintf("source name %q cannot name its stream", name), "set stream: to lower-case letters, digits and _, starting with a letter, or rename the source")
		}
	}
	if !slotName.MatchString(s.Slot) {
		if _, set := l.values[path+".slot"]; set {
			l.addAt(path+".slot", fmt.Sprintf("slot name %q is not usable", s.Slot), "PostgreSQL allows lower-case letters, digits and _, at most 63")
		} else {
			l.addAtKey(path, fmt.Sprintf("the default slot name %q is not usable", s.Slot), "set slot: to lower-case letters, digits and _ (at most 63), or rename the source")
		}
	}
	if !publicationName.MatchString(s.Publication) {
		if _, set := l.values[path+".publication"]; set {
			l.addAt(path+".publication", fmt.Sprintf("publication name %q is not usable", s.Publication), "use lower-case letters, digits and _, starting with a letter or _, at most 63")
		} else {
			l.addAtKey(path, fmt.Sprintf("the default publication name %q is not usable", s.Publication), "set publication: to lower-case letters, digits and _ (at most 63), or rename the source")
		}
	}

	for key, set := range map[string]bool{"listen": s.Listen != "", "tls": s.TLS.Cert != "" || s.TLS.Key != "", "paths": len(s.Paths) > 0,
		"parse": s.Parse != "", "pattern": s.Pattern != "", "multiline": s.Multiline != ""} {
		if set {
			l.addAt(path+"."+key, fmt.Sprintf("%s does not apply to a postgres_cdc source", key), "remove it")
		}
	}
}

// checkSharedCDC reports what postgres_cdc sources may not share: a slot
// or a publication (each source moves its slot alone), and a stream with a
// source of another type (its rows would not be changes).
func (l *loader) checkSharedCDC(c *Config) {
	slots, pubs := map[string]string{}, map[string]string{}
	for _, name := range sortedKeys(c.Sources) {
		s := c.Sources[name]
		if s.Type != "postgres_cdc" {
			continue
		}
		path := "sources." + name
		if other, ok := slots[s.Slot]; ok {
			l.addAt(path+".slot", fmt.Sprintf("sources %s and %s use the same slot %s", other, name, s.Slot), "give each postgres_cdc source a slot of its own")
		}
		slots[s.Slot] = name
		if other, ok := pubs[s.Publication]; ok {
			l.addAt(path+".publication", fmt.Sprintf("sources %s and %s use the same publication %s", other, name, s.Publication), "give each postgres_cdc source a publication of its own")
		}
		pubs[s.Publication] = name
		for _, o := range sortedKeys(c.Sources) {
			if other := c.Sources[o]; other.Type != "postgres_cdc" && other.Stream == s.Stream {
				l.addAt(path+".stream", fmt.Sprintf("source %s writes log records to stream %s; changes need a stream of their own", o, s.Stream), "write another stream: for one of them")
			}
		}
	}
}
