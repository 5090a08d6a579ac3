package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml"
	"github.com/invopop/jsonschema"
	"github.com/sluice-data/sluice"
)

// Pipeline is a user stream pipeline: events from one or more streams go
// through the steps, in order, and the results to the outputs.
type Pipeline struct {
	From  Inputs  `yaml:"from" json:"from" jsonschema:"description=What to read: a stream (events\\, logs\\, bad\\, a source's stream or another pipeline's output stream)\\, a Kafka topic (kafka://host:port[\\,host:port]/topic?group=NAME)\\, files ({file: {paths: [GLOB]\\, parse: json}})\\, or a list of them"`
	Steps []Step  `yaml:"steps" json:"steps,omitempty" jsonschema:"description=Steps\\, each a mapping with one key: filter\\, set\\, drop\\, keep\\, rename\\, parse\\, route\\, dedupe\\, sample\\, window"`
	To    Outputs `yaml:"to" json:"to" jsonschema:"description=Where results go: {stream: NAME}\\, {table: NAME} (a warehouse table) or {kafka: kafka://host:port/topic\\, key: FIELD}\\, or a list of them"`
	// Start is where a new pipeline starts reading: "beginning" (default)
	// or "now". A pipeline that ran before goes on from its checkpoint.
	// Memory bounds the messages the pipeline holds (read ahead and in the
	// batch it works on); when an output stalls, reading waits.
	Memory ByteSize `yaml:"memory" json:"memory,omitempty" jsonschema:"description=Memory for messages read ahead and in process (window state comes on top); when an output stalls\\, reading waits. Default 64MiB"`
	Start  string   `yaml:"start" json:"start,omitempty" jsonschema:"enum=beginning,enum=now,description=Where a pipeline without a checkpoint starts: beginning (default) or now"`
	// Retries is how many more times a step that failed on an event is
	// tried before the event goes to bad.
	Retries int `yaml:"retries" json:"retries,omitempty" jsonschema:"minimum=0,maximum=100,description=How many more times a step that failed on an event (an expression error\\, a value of the wrong type) is tried before the event goes to bad (default 0: errors of expressions are deterministic)"`
	// Workers split the pipeline's work into that many partitions, each
	// with its own checkpoint, run by one worker at a time: all of them in
	// one process, or shared out between the sluice processes on one bus.
	Workers int `yaml:"workers" json:"workers,omitempty" jsonschema:"minimum=1,maximum=64,description=Partitions of the work\\, run in parallel (default 1). The sluice processes on one bus share them out; each runs its share. Events are split by key\\, so the order of one key's events is kept"`
	// Key splits events between workers; default: the window's group_by,
	// else the dedupe or throttle key, else whole messages go round-robin.
	Key StringList `yaml:"key" json:"key,omitempty" jsonschema:"description=Field(s) whose values decide an event's worker (events of one key stay in order on one worker). Default: the window's group_by\\, else the dedupe or throttle key\\, else whole input messages are split between workers"`
}

// Input is one input of a pipeline: a stream on the bus or a Kafka topic
// (Stream, kafka://…), or files (File).
type Input struct {
	Stream string     `yaml:"-" json:"-"`
	File   *FileInput `yaml:"file" json:"file,omitempty"`
}

// FileInput reads files directly, without the bus: the lines of the files
// the globs match, followed through rotation and truncation like a file
// source's, each file's position kept in the pipeline's checkpoint.
type FileInput struct {
	Paths     []string `yaml:"paths" json:"paths"`
	Parse     string   `yaml:"parse" json:"parse,omitempty"`
	Multiline string   `yaml:"multiline" json:"multiline,omitempty"`
}

// File input formats (FileInput.Parse).
const (
	FileParseJSON  = "json"  // each record is a JSON object: the event
	FileParsePlain = "plain" // each record is the event's message field
)

// UnmarshalYAML accepts a stream's name (or a Kafka URL) or {file: {…}}.
func (in *Input) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*in = Input{Stream: s}
		return nil
	}
	type plain Input
	return unmarshal((*plain)(in))
}

func (in Input) String() string {
	if in.File != nil {
		return fmt.Sprintf("file %v", in.File.Paths)
	}
	return in.Stream
}

// Inputs are one input or a list of them.
type Inputs []Input

// UnmarshalYAML accepts one input or a list.
func (in *Inputs) UnmarshalYAML(unmarshal func(any) error) error {
	var many []Input
	if err := unmarshal(&many); err == nil {
		*in = many
		return nil
	}
	var one Input
	if err := unmarshal(&one); err != nil {
		return err
	}
	*in = Inputs{one}
	return nil
}

// Streams are the names of the stream and Kafka inputs, in order.
func (in Inputs) Streams() []string {
	var out []string
	for _, i := range in {
		if i.File == nil {
			out = append(out, i.Stream)
		}
	}
	return out
}

// File is the file input, if there is one (a pipeline has at most one).
func (in Inputs) File() *FileInput {
	for _, i := range in {
		if i.File != nil {
			return i.File
		}
	}
	return nil
}

// JSONSchema: an input (a stream's name, or {file: {…}}) or a list of them.
func (Inputs) JSONSchema() *jsonschema.Schema {
	file := &jsonschema.Schema{Type: "object", Properties: jsonschema.NewProperties(), Required: []string{"paths"},
		AdditionalProperties: jsonschema.FalseSchema}
	file.Properties.Set("paths", &jsonschema.Schema{Type: "array", Items: &jsonschema.Schema{Type: "string"},
		Description: "Glob patterns of the files to read, e.g. [/var/log/app/*.ndjson]"})
	file.Properties.Set("parse", &jsonschema.Schema{Type: "string", Enum: []any{FileParseJSON, FileParsePlain},
		Description: "json (default: each line a JSON object, the event) or plain (each line the event's message field)"})
	file.Properties.Set("multiline", &jsonschema.Schema{Type: "string",
		Description: "A regular expression that matches the first line of a record; lines that don't match are appended to the record before"})
	obj := &jsonschema.Schema{Type: "object", Properties: jsonschema.NewProperties(), Required: []string{"file"},
		AdditionalProperties: jsonschema.FalseSchema}
	obj.Properties.Set("file", file)
	one := &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string"}, obj}}
	return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string"}, obj, {Type: "array", Items: one}}}
}

// Step is one step of a pipeline; exactly one field is set.
type Step struct {
	Filter   string            `yaml:"filter" json:"filter,omitempty" jsonschema:"description=Keep the events for which this expression is true\\, e.g. event == \"purchase\""`
	Set      map[string]string `yaml:"set" json:"set,omitempty" jsonschema:"description=Fields to set\\, each to the value of an expression\\, e.g. {total: price * qty}"`
	Drop     []string          `yaml:"drop" json:"drop,omitempty" jsonschema:"description=Fields to remove"`
	Keep     []string          `yaml:"keep" json:"keep,omitempty" jsonschema:"description=The only fields to keep"`
	Rename   map[string]string `yaml:"rename" json:"rename,omitempty" jsonschema:"description=Fields to rename: {old: new}"`
	Parse    *ParseStep        `yaml:"parse" json:"parse,omitempty"`
	Route    []Route           `yaml:"route" json:"route,omitempty" jsonschema:"description=Conditions and where matching events go instead of the pipeline's outputs; the first that matches wins; events matching none go on"`
	Dedupe   *DedupeStep       `yaml:"dedupe" json:"dedupe,omitempty"`
	Sample   *SampleStep       `yaml:"sample" json:"sample,omitempty"`
	Window   *WindowStep       `yaml:"window" json:"window,omitempty"`
	Lookup   *LookupStep       `yaml:"lookup" json:"lookup,omitempty"`
	Throttle *ThrottleStep     `yaml:"throttle" json:"throttle,omitempty"`
}

// LookupStep adds fields from a CSV file (with a header row) or from a
// warehouse table, matched by a field of the event; exactly one of File and
// Table is set. The file is read again when it changes, the table every
// Reload.
type LookupStep struct {
	File   string   `yaml:"file" json:"file,omitempty" jsonschema:"description=A CSV file with a header row (or give table)"`
	Table  string   `yaml:"table" json:"table,omitempty" jsonschema:"description=A table or view of the warehouse (DuckDB or PostgreSQL)\\, e.g. customers\\, a pipeline's output table or a lake table (or give file)"`
	Key    string   `yaml:"key" json:"key" jsonschema:"description=The event field to match"`
	Column string   `yaml:"column" json:"column,omitempty" jsonschema:"description=The column it matches. Default: the same name as key"`
	Fields []string `yaml:"fields" json:"fields,omitempty" jsonschema:"description=The columns to add. Default: all the others"`
	Reload Duration `yaml:"reload" json:"reload,omitempty" jsonschema:"description=How often to look for changes: a table is read again\\, a file when its modification time or size changed. Default 30s for a table\\, 5s for a file"`
}

// ThrottleStep drops the events of a key beyond Threshold in each Window.
type ThrottleStep struct {
	Threshold int        `yaml:"threshold" json:"threshold" jsonschema:"description=Events let through per key and window"`
	Window    Duration   `yaml:"window" json:"window,omitempty" jsonschema:"description=Default 1s"`
	Key       StringList `yaml:"key" json:"key,omitempty" jsonschema:"description=Field(s) that split the limit\\, e.g. user_id. Default: one limit for all"`
}

// ParseStep parses a text field into fields.
type ParseStep struct {
	Field   string `yaml:"field" json:"field" jsonschema:"description=The field holding the text"`
	Format  string `yaml:"format" json:"format" jsonschema:"enum=json,enum=regex,enum=kv,enum=timestamp,description=json (an object whose members become fields)\\, regex (named groups)\\, kv (key=value pairs)\\, timestamp (the field becomes a time\\, with layout)"`
	Pattern string `yaml:"pattern" json:"pattern,omitempty" jsonschema:"description=regex: a regular expression with named groups (?P<name>…)"`
	Layout  string `yaml:"layout" json:"layout,omitempty" jsonschema:"description=timestamp: a Go time layout (default RFC 3339)\\, or unix\\, unix_ms"`
	Into    string `yaml:"into" json:"into,omitempty" jsonschema:"description=Put the parsed fields under this field instead of at the top (json\\, regex\\, kv)\\; timestamp: the field to write (default: the field itself)"`
}

// Route sends the events matching If to To.
type Route struct {
	If string  `yaml:"if" json:"if" jsonschema:"description=An expression over the event"`
	To Outputs `yaml:"to" json:"to"`
}

// DedupeStep drops events whose key was seen within Window.
type DedupeStep struct {
	Key    StringList `yaml:"key" json:"key" jsonschema:"description=The field(s) that identify an event\\, e.g. event_id"`
	Window Duration   `yaml:"window" json:"window,omitempty" jsonschema:"description=How long a key is remembered. Default 10m"`
}

// SampleStep keeps a fraction of the events.
type SampleStep struct {
	Rate float64    `yaml:"rate" json:"rate" jsonschema:"description=The fraction kept\\, between 0 and 1"`
	Key  StringList `yaml:"key" json:"key,omitempty" jsonschema:"description=Keep or drop by a hash of these fields (all events of a user together); default: at random"`
}

// WindowStep aggregates events into windows of event time.
type WindowStep struct {
	Type       string            `yaml:"type" json:"type" jsonschema:"enum=tumbling,enum=hopping,enum=session,description=tumbling (back to back)\\, hopping (of size\\, starting every every) or session (a group's events less than gap apart)"`
	Size       Duration          `yaml:"size" json:"size,omitempty" jsonschema:"description=tumbling and hopping: window length\\, e.g. 1m"`
	Every      Duration          `yaml:"every" json:"every,omitempty" jsonschema:"description=hopping: how often a window starts"`
	Gap        Duration          `yaml:"gap" json:"gap,omitempty" jsonschema:"description=session: a group's session ends after this long without its events\\, e.g. 30m; the window is [first event\\, last event + gap)"`
	Time       string            `yaml:"time" json:"time,omitempty" jsonschema:"description=The event-time field. Default event_time"`
	GroupBy    []string          `yaml:"group_by" json:"group_by,omitempty" jsonschema:"description=Fields that split a window into groups"`
	Aggregates map[string]string `yaml:"aggregates" json:"aggregates" jsonschema:"description=Result fields: count()\\, sum(f)\\, min(f)\\, max(f)\\, avg(f)\\, distinct(f) (approximate)\\, quantile(f\\, 0.95) (approximate)"`
	Watermark  Duration          `yaml:"watermark" json:"watermark,omitempty" jsonschema:"description=How far behind the newest event time a window closes (out-of-order events within it count). Default 0s"`
	Lateness   Duration          `yaml:"allowed_lateness" json:"allowed_lateness,omitempty" jsonschema:"description=How long after closing a window still takes late events (its result is then updated). Default 0s. Not for session windows: they are written once"`
	Idle       Duration          `yaml:"idle" json:"idle,omitempty" jsonschema:"description=With no event for this long\\, time moves on by the clock so that windows close. Default: the window size (session: the gap)"`
}

// Output is one place results go: exactly one field is set.
type Output struct {
	Stream string `yaml:"stream" json:"stream,omitempty" jsonschema:"description=A stream on the bus (created when new\\, kept 7 days\\, not archived: use lake for a lake table)"`
	Table  string `yaml:"table" json:"table,omitempty" jsonschema:"description=A warehouse table; window results replace the rows of their window and group\\, so a result written twice is one row"`
	Kafka  string `yaml:"kafka" json:"kafka,omitempty" jsonschema:"description=A Kafka topic: kafka://host:port[\\,host:port]/topic (the topic must exist)"`
	// Key is the event field whose value is the Kafka record key; empty:
	// the _key the event came with from a Kafka input.
	Key string `yaml:"key" json:"key,omitempty" jsonschema:"description=kafka: the field whose value is the record key. Default: _key (the key of the Kafka record the event came from)"`
	// File appends NDJSON to a local file.
	File string `yaml:"file" json:"file,omitempty" jsonschema:"description=A file that results are appended to as NDJSON (fsynced before the pipeline moves on)"`
	// Webhook POSTs each batch as NDJSON.
	Webhook string `yaml:"webhook" json:"webhook,omitempty" jsonschema:"description=An http(s) URL each batch is POSTed to as NDJSON; anything but a 2xx answer is retried"`
	// Lake is a lake table: a stream of the same name, archived to the
	// lake as Parquet (exactly-once files) and queryable as a view.
	Lake string `yaml:"lake" json:"lake,omitempty" jsonschema:"description=A lake table (Parquet in the lake\\, partitioned by hour of time\\, a view in the warehouse): its rows also form a stream of the same name that other pipelines can read. Columns come from the fields written; a field whose type conflicts goes to bad"`
	// Time is a lake output's partition column; see LakeTime.
	Time string `yaml:"time" json:"time,omitempty" jsonschema:"description=lake: the time field that places a row in its hour partition. Default: window_start after a window\\, else event_time (events)\\, timestamp (logs and file sources) or failed_at (bad)"`
}

// BusStream is the stream an output writes to: its stream, or its lake
// table's stream.
func (o Output) BusStream() string {
	if o.Lake != "" {
		return o.Lake
	}
	return o.Stream
}

// StringList is a string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a single string or a list.
func (s *StringList) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return err
	}
	*s = many
	return nil
}

// JSONSchema: a string or a list of strings.
func (StringList) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{OneOf: []*jsonschema.Schema{{Type: "string"}, {Type: "array", Items: &jsonschema.Schema{Type: "string"}}}}
}

// Outputs is one output or a list of them.
type Outputs []Output

// UnmarshalYAML accepts one output (a mapping) or a list.
func (o *Outputs) UnmarshalYAML(unmarshal func(any) error) error {
	var one Output
	if err := unmarshal(&one); err == nil {
		*o = Outputs{one}
		return nil
	}
	var many []Output
	if err := unmarshal(&many); err != nil {
		return err
	}
	*o = many
	return nil
}

// JSONSchema: an output or a list of outputs.
func (Outputs) JSONSchema() *jsonschema.Schema {
	out := &jsonschema.Schema{Type: "object", Properties: jsonschema.NewProperties()}
	out.Properties.Set("stream", &jsonschema.Schema{Type: "string"})
	out.Properties.Set("table", &jsonschema.Schema{Type: "string"})
	out.Properties.Set("kafka", &jsonschema.Schema{Type: "string"})
	out.Properties.Set("key", &jsonschema.Schema{Type: "string"})
	out.Properties.Set("file", &jsonschema.Schema{Type: "string"})
	out.Properties.Set("webhook", &jsonschema.Schema{Type: "string"})
	return &jsonschema.Schema{OneOf: []*jsonschema.Schema{out, {Type: "array", Items: out}}}
}

var _ yaml.InterfaceUnmarshaler = (*StringList)(nil)

func (o Output) String() string {
	switch {
	case o.File != "":
		return "file " + o.File
	case o.Webhook != "":
		return "webhook " + o.Webhook
	case o.Stream != "":
		return "stream " + o.Stream
	case o.Lake != "":
		return "lake " + o.Lake
	case o.Kafka != "":
		return "kafka " + o.Kafka
	}
	return fmt.Sprintf("table %s", o.Table)
}

// Aggregate is a parsed window aggregate such as sum(revenue).
type Aggregate struct {
	Func  string  // count, sum, min, max, avg, distinct, quantile
	Field string  // empty for count()
	Q     float64 // quantile's fraction
}

var aggregateRe = regexp.MustCompile(`^\s*([a-z_]+)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)?\s*(?:,\s*([0-9.]+)\s*)?\)\s*$`)

// ParseAggregate reads an aggregate of a window step.
func ParseAggregate(s string) (Aggregate, error) {
	m := aggregateRe.FindStringSubmatch(s)
	if m == nil {
		return Aggregate{}, fmt.Errorf("%q is not an aggregate such as count(), sum(revenue) or quantile(latency, 0.95)", s)
	}
	a := Aggregate{Func: m[1], Field: m[2]}
	switch a.Func {
	case "count":
		if m[3] != "" {
			return a, fmt.Errorf("%q: count takes no fraction", s)
		}
	case "sum", "min", "max", "avg", "distinct":
		if a.Field == "" || m[3] != "" {
			return a, fmt.Errorf("%q: %s takes one field, e.g. %s(revenue)", s, a.Func, a.Func)
		}
	case "quantile":
		q, err := strconv.ParseFloat(m[3], 64)
		if a.Field == "" || err != nil || q < 0 || q > 1 {
			return a, fmt.Errorf("%q: quantile takes a field and a fraction between 0 and 1, e.g. quantile(latency, 0.95)", s)
		}
		a.Q = q
	default:
		return a, fmt.Errorf("%q: unknown aggregate %s; use count, sum, min, max, avg, distinct or quantile", s, a.Func)
	}
	return a, nil
}

// CompileExpr compiles an expression of a pipeline (or a tap filter) over
// an event's fields; absent fields are nil. A call of a name that is not one
// of expr's functions is an error now rather than on every event.
func CompileExpr(src string, asBool bool) (*vm.Program, error) {
	opts := []expr.Option{expr.Env(map[string]any{}), expr.AllowUndefinedVariables()}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	var calls []*ast.CallNode
	root := prog.Node()
	ast.Walk(&root, visitor(func(n *ast.Node) {
		if c, ok := (*n).(*ast.CallNode); ok {
			calls = append(calls, c)
		}
	}))
	if len(calls) > 0 {
		c := calls[0]
		e := &file.Error{Location: c.Location(), Message: fmt.Sprintf(
			"%s is not a function: expressions can call expr's built-in functions (len, lower, upper, trim, split, int, float, string, now, date, duration, abs, round, any, all, filter, map, count, …)", c.Callee)}
		return nil, e.Bind(file.NewSource(src))
	}
	return prog, nil
}

// ExprFields are the event fields an expression reads (its free names);
// all is true when it reads the whole event ($env).
func ExprFields(p *vm.Program) (fields []string, all bool) {
	root := p.Node()
	seen := map[string]bool{}
	ast.Walk(&root, visitor(func(n *ast.Node) {
		if id, ok := (*n).(*ast.IdentifierNode); ok {
			if id.Value == "$env" {
				all = true
			}
			if !seen[id.Value] {
				seen[id.Value] = true
				fields = append(fields, id.Value)
			}
		}
	}))
	return fields, all
}

type visitor func(*ast.Node)

func (v visitor) Visit(n *ast.Node) { v(n) }

var stepKinds = []string{"filter", "set", "drop", "keep", "rename", "parse", "route", "dedupe", "sample", "window", "lookup", "throttle"}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// PipelineStreams are the streams pipelines write to, and the streams of
// the lake tables jobs write (extract, http), sorted.
func (c *Config) PipelineStreams() []string {
	var out []string
	for s := range c.jobLakeOutputs() {
		out = append(out, s)
	}
	for _, p := range c.Pipelines {
		for _, o := range allOutputs(p) {
			if s := o.BusStream(); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// LakeOutputs are the lake tables pipelines and jobs (extract, http)
// write, by name, with their time (partition) column.
func (c *Config) LakeOutputs() map[string]string {
	out := c.jobLakeOutputs()
	for _, p := range c.Pipelines {
		for _, o := range allOutputs(p) {
			if o.Lake != "" {
				out[o.Lake] = o.Time
			}
		}
	}
	return out
}

// lakeTime is the default time column of a lake output of p: window_start
// for window results (afterWindow), else the time column of the streams p
// reads ("" when they differ or are unknown).
func (c *Config) lakeTime(p Pipeline, afterWindow bool) string {
	if afterWindow && slices.ContainsFunc(p.Steps, func(s Step) bool { return s.Window != nil }) {
		return "window_start"
	}
	col := ""
	for _, in := range p.From {
		s := in.Stream
		var t string
		switch {
		case in.File != nil:
			t = "" // a file's events have no known time field
		case s == sluice.StreamEvents:
			t = "event_time"
		case s == sluice.StreamBad:
			t = "failed_at"
		case slices.Contains(c.CDCStreams(), s):
			t = "commit_time"
		case s == sluice.StreamLogs || slices.Contains(c.SourceStreams(), s):
			t = "timestamp"
		default:
			// Another pipeline's lake output has its own time column.
			t = c.LakeOutputs()[s]
		}
		if t == "" || (col != "" && col != t) {
			return ""
		}
		col = t
	}
	return col
}

func allOutputs(p Pipeline) []Output {
	out := slices.Clone(p.To)
	for _, s := range p.Steps {
		for _, r := range s.Route {
			out = append(out, r.To...)
		}
	}
	return out
}

func (l *loader) validatePipelines(c *Config) {
	streams := append(slices.Clone(sluice.Streams), c.SourceStreams()...)
	streams = append(streams, c.PipelineStreams()...)
	lakeTables := append(slices.Clone(sluice.Streams[1:]), c.SourceStreams()...)
	for _, name := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[name]
		path := "pipelines." + name
		if !identRe.MatchString(name) {
			l.addAtKey(path, fmt.Sprintf("pipeline name %q: use letters, digits and _", name), "e.g. revenue_per_minute")
		}
		if len(p.From) == 0 {
			l.addAtKey(path, fmt.Sprintf("pipeline %s has no from", name), "e.g. from: events")
		}
		topics := map[string]bool{}
		files := 0
		for i, in := range p.From {
			s := in.Stream
			if in.File != nil {
				files++
				l.checkFileInput(fmt.Sprintf("%s.from", path), p.From, i, files)
				continue
			}
			if IsKafkaURL(s) {
				k, err := ParseKafkaURL(s)
				if err != nil {
					l.addAt(path+".from", fmt.Sprintf("pipeline %s: %v", name, err), "e.g. from: kafka://127.0.0.1:9092/orders?group=orders_pipeline")
				} else if topics[k.Topic] {
					l.addAt(path+".from", fmt.Sprintf("pipeline %s reads Kafka topic %s twice", name, k.Topic), "name each topic once")
				}
				topics[k.Topic] = true
			} else if !slices.Contains(streams, s) {
				l.addAt(fmt.Sprintf("%s.from", path), fmt.Sprintf("pipeline %s reads %q, which is no stream", name, s), "the streams are "+strings.Join(streams, ", ")+"; a Kafka topic is kafka://host:port/topic")
			} else if s == sluice.StreamRaw {
				l.addAt(fmt.Sprintf("%s.from", path), fmt.Sprintf("pipeline %s reads raw: raw holds collector payloads, not events", name), "read events (what enrich makes of raw) or logs")
			}
		}
		if p.Memory != 0 && p.Memory < MiB {
			l.addAt(path+".memory", fmt.Sprintf("%s.memory is %s; it must be at least 1MiB", path, p.Memory), "the default is 64MiB")
		}
		if p.Retries < 0 || p.Retries > 100 {
			l.addAt(path+".retries", fmt.Sprintf("%s.retries is %d; it must be between 0 and 100", path, p.Retries), "e.g. retries: 3")
		}
		if p.Workers < 0 || p.Workers > 64 {
			l.addAt(path+".workers", fmt.Sprintf("%s.workers is %d; it must be between 1 and 64", path, p.Workers), "e.g. workers: 4")
		}
		if p.Workers > 1 && slices.ContainsFunc(p.From.Streams(), IsKafkaURL) {
			l.addAt(path+".workers", fmt.Sprintf("pipeline %s reads Kafka with %d workers; a Kafka input shares its partitions through its consumer group instead", name, p.Workers), "leave workers at 1; a standby process takes over when this one stops")
		}
		if p.Workers > 1 && files > 0 {
			l.addAt(path+".workers", fmt.Sprintf("pipeline %s reads files with %d workers; one process reads a pipeline's files", name, p.Workers), "leave workers at 1; to spread the steps, write the files' events to a stream and read it with workers in a second pipeline")
		}
		for _, k := range p.Key {
			if k == "" {
				l.addAt(path+".key", fmt.Sprintf("%s.key has an empty field name", path), "e.g. key: user_id")
			}
		}
		if p.Workers > 1 {
			if err := p.checkSplit(); err != nil {
				l.addAt(path+".workers", fmt.Sprintf("pipeline %s: %v", name, err), "see docs/pipelines.md, Workers")
			}
		}
		if p.Start != "" && p.Start != "beginning" && p.Start != "now" {
			l.addAt(path+".start", fmt.Sprintf("%s.start is %q", path, p.Start), "beginning (default) or now")
		}
		if len(p.To) == 0 {
			l.addAtKey(path, fmt.Sprintf("pipeline %s has no to", name), "e.g. to: {table: revenue_per_minute} or to: {stream: purchases}")
		}
		windows := 0
		for i, s := range p.Steps {
			sp := fmt.Sprintf("%s.steps[%d]", path, i)
			var set []string
			for j, on := range []bool{s.Filter != "", s.Set != nil, s.Drop != nil, s.Keep != nil, s.Rename != nil, s.Parse != nil, s.Route != nil, s.Dedupe != nil, s.Sample != nil, s.Window != nil, s.Lookup != nil, s.Throttle != nil} {
				if on {
					set = append(set, stepKinds[j])
				}
			}
			if len(set) != 1 {
				at := path + ".steps"
				if len(set) > 1 {
					at = sp + "." + set[1]
				}
				l.addAtKey(at, fmt.Sprintf("%s must have exactly one of %s (it has %d)", sp, strings.Join(stepKinds, ", "), len(set)),
					"write each step as its own list item: - filter: '…'")
				continue
			}
			l.checkExpr(sp+".filter", s.Filter, true)
			for _, k := range sortedKeys(s.Set) {
				l.checkExpr(sp+".set."+k, s.Set[k], false)
			}
			for j, r := range s.Route {
				l.checkExpr(fmt.Sprintf("%s.route[%d].if", sp, j), r.If, true)
				if r.If == "" {
					l.addAt(fmt.Sprintf("%s.route[%d]", sp, j), "a route needs if: an expression", `e.g. - {if: 'severity <= 3', to: {stream: alerts}}`)
				}
				l.checkOutputs(fmt.Sprintf("%s.route[%d].to", sp, j), r.To, lakeTables)
			}
			if ps := s.Parse; ps != nil {
				switch ps.Format {
				case "json", "kv", "timestamp":
				case "regex":
					if _, err := regexp.Compile(ps.Pattern); err != nil || ps.Pattern == "" {
						l.addAt(sp+".parse.pattern", fmt.Sprintf("%s.parse.pattern: %v", sp, err), "a regular expression with named groups (?P<name>…)")
					}
				default:
					l.addAt(sp+".parse.format", fmt.Sprintf("%s.parse.format is %q", sp, ps.Format), "json, regex, kv or timestamp")
				}
				if ps.Field == "" {
					l.addAt(sp+".parse", sp+".parse needs field: the field holding the text", "e.g. parse: {field: message, format: kv}")
				}
			}
			if d := s.Dedupe; d != nil && len(d.Key) == 0 {
				l.addAt(sp+".dedupe", sp+".dedupe needs key: the field(s) that identify an event", "e.g. dedupe: {key: order_id, window: 1h}")
			}
			if sa := s.Sample; sa != nil && (sa.Rate <= 0 || sa.Rate > 1) {
				l.addAt(sp+".sample.rate", fmt.Sprintf("%s.sample.rate is %g; it must be above 0 and at most 1", sp, sa.Rate), "e.g. rate: 0.1 keeps one event in ten")
			}
			if lk := s.Lookup; lk != nil {
				l.checkLookup(sp+".lookup", lk)
			}
			if th := s.Throttle; th != nil && th.Threshold < 1 {
				l.addAt(sp+".throttle", sp+".throttle.threshold must be at least 1", "e.g. throttle: {threshold: 100, window: 1s, key: user_id}")
			}
			if w := s.Window; w != nil {
				windows++
				l.checkWindow(sp+".window", w)
			}
		}
		if windows > 1 {
			l.addAtKey(path+".steps", fmt.Sprintf("pipeline %s has %d window steps; one is allowed", name, windows), "split it into two pipelines joined by a stream")
		}
		l.checkOutputs(path+".to", p.To, lakeTables)
	}
	l.resolveLakeOutputs(c)
	l.checkFileOutputs(c)
}

// checkFileOutputs refuses two pipelines appending to one file: after a
// crash, a pipeline cuts its file back to what its checkpoint covers,
// which would cut the other's rows.
func (l *loader) checkFileOutputs(c *Config) {
	writer := map[string]string{}
	for _, name := range sortedKeys(c.Pipelines) {
		for _, o := range allOutputs(c.Pipelines[name]) {
			if o.File == "" {
				continue
			}
			path := filepath.Clean(o.File)
			if other, ok := writer[path]; ok && other != name {
				l.addAtKey("pipelines."+name, fmt.Sprintf("pipelines %s and %s both write file %s", other, name, o.File),
					"give each pipeline a file of its own: after a crash a pipeline cuts its file back to its checkpoint")
				continue
			}
			writer[path] = name
		}
	}
}

// resolveLakeOutputs fills in the time column of lake outputs that give
// none, and checks that a lake table has one time column, and that its name
// is not also a plain stream output (whose rows the lake could not type).
func (l *loader) resolveLakeOutputs(c *Config) {
	type ref struct {
		path string
		o    *Output
		p    Pipeline
		post bool // after the window: window results
	}
	var refs []ref
	for _, name := range sortedKeys(c.Pipelines) {
		p := c.Pipelines[name]
		path := "pipelines." + name
		for j, s := range p.Steps {
			for k, r := range s.Route {
				for i := range r.To {
					refs = append(refs, ref{outputPath(fmt.Sprintf("%s.steps[%d].route[%d].to", path, j, k), r.To, i), &r.To[i], p, false})
				}
			}
		}
		for i := range p.To {
			refs = append(refs, ref{outputPath(path+".to", p.To, i), &p.To[i], p, true})
		}
	}
	// A pipeline reading another's lake output takes its time column:
	// resolve until nothing changes.
	for range len(refs) + 1 {
		changed := false
		for _, r := range refs {
			if r.o.Lake != "" && r.o.Time == "" {
				if t := c.lakeTime(r.p, r.post); t != "" {
					r.o.Time, changed = t, true
				}
			}
		}
		if !changed {
			break
		}
	}
	times := map[string]string{}
	for _, r := range refs {
		switch {
		case r.o.Lake == "":
			if r.o.Stream != "" && slices.ContainsFunc(refs, func(x ref) bool { return x.o.Lake == r.o.Stream }) {
				l.addAt(r.path+".stream", fmt.Sprintf("%s.stream %q is also a lake output; a lake table's stream only takes rows through lake outputs", r.path, r.o.Stream), "write {lake: "+r.o.Stream+"} here too, or use another name")
			}
		case r.o.Time == "":
			l.addAt(r.path+".lake", fmt.Sprintf("%s.lake %s: no time column to partition it by", r.path, r.o.Lake), "name the time field: {lake: "+r.o.Lake+", time: FIELD}")
		case times[r.o.Lake] != "" && times[r.o.Lake] != r.o.Time:
			l.addAt(r.path+".time", fmt.Sprintf("%s: lake table %s is partitioned by %s elsewhere, %s here", r.path, r.o.Lake, times[r.o.Lake], r.o.Time), "give every output to one lake table the same time")
		default:
			times[r.o.Lake] = r.o.Time
		}
	}
}

// checkFileInput checks from[i], the n-th file input of a pipeline whose
// from is at path.
func (l *loader) checkFileInput(path string, from Inputs, i, n int) {
	const example = "e.g. from: {file: {paths: [/var/log/app/*.ndjson], parse: json}}"
	fi := from[i].File
	at := path
	if len(from) > 1 {
		at = fmt.Sprintf("%s[%d]", path, i)
	}
	at += ".file"
	if n > 1 {
		l.addAt(at, fmt.Sprintf("%s: a pipeline reads one file input", at), "list every glob in the first one's paths")
	}
	if len(fi.Paths) == 0 {
		l.addAt(at, at+" needs paths: glob patterns of the files to read", example)
	}
	for j, g := range fi.Paths {
		if _, err := filepath.Match(g, ""); err != nil || g == "" {
			l.addAt(fmt.Sprintf("%s.paths[%d]", at, j), fmt.Sprintf("%s.paths[%d] %q is not a glob pattern", at, j, g), "e.g. /var/log/app/*.ndjson")
		}
	}
	switch fi.Parse {
	case "", FileParseJSON, FileParsePlain:
	default:
		l.addAt(at+".parse", fmt.Sprintf("%s.parse is %q", at, fi.Parse), "json (each line a JSON object, the default) or plain (each line the message field)")
	}
	if fi.Multiline != "" {
		if _, err := regexp.Compile(fi.Multiline); err != nil {
			l.addAt(at+".multiline", fmt.Sprintf("%s.multiline: %v", at, err), "a regular expression matching the first line of a record, e.g. ^\\S")
		}
	}
}

func (l *loader) checkLookup(path string, lk *LookupStep) {
	const example = "e.g. lookup: {file: countries.csv, key: country} or lookup: {table: customers, key: user_id, column: id}"
	switch {
	case lk.File != "" && lk.Table != "":
		l.addAt(path, path+" has both file and table; a lookup reads one of them", "keep file (a CSV file) or table (a warehouse table)")
	case lk.File == "" && lk.Table == "":
		l.addAt(path, path+" needs file (a CSV file) or table (a warehouse table)", example)
	case lk.File != "":
		if _, err := os.Stat(lk.File); err != nil {
			l.addAt(path+".file", fmt.Sprintf("%s.file: %v", path, err), "a CSV file with a header row")
		}
	case !identRe.MatchString(lk.Table):
		l.addAt(path+".table", fmt.Sprintf("%s.table %q: use letters, digits and _", path, lk.Table), "a table or view of the warehouse, e.g. table: customers")
	default:
		// The table's column names go into SQL.
		if lk.Column == "" && lk.Key != "" && !identRe.MatchString(lk.Key) {
			l.addAt(path+".key", fmt.Sprintf("%s.key %q is also the table's column to match (column is not given); a column name has letters, digits and _", path, lk.Key), "name the table's column: column: NAME")
		}
		if lk.Column != "" && !identRe.MatchString(lk.Column) {
			l.addAt(path+".column", fmt.Sprintf("%s.column %q: use letters, digits and _", path, lk.Column), "a column of table "+lk.Table)
		}
		for i, f := range lk.Fields {
			if !identRe.MatchString(f) {
				l.addAt(path+".fields", fmt.Sprintf("%s.fields[%d] %q: use letters, digits and _", path, i, f), "columns of table "+lk.Table)
			}
		}
	}
	if lk.Key == "" {
		l.addAt(path, path+" needs key: the event field to match", example)
	}
	if lk.Reload < 0 || (lk.Reload > 0 && lk.Reload < Duration(time.Second)) {
		l.addAt(path+".reload", fmt.Sprintf("%s.reload is %s; it must be at least 1s", path, lk.Reload), "the default is 30s for a table, 5s for a file")
	}
}

func (l *loader) checkExpr(path, src string, asBool bool) {
	if src == "" {
		return
	}
	if _, err := CompileExpr(src, asBool); err != nil {
		l.addAt(path, fmt.Sprintf("%s: %v", path, err), "expressions use expr-lang syntax over the event's fields, e.g. event == \"purchase\" && revenue > 10")
	}
}

// outputPath is the config path of outs[i]: path itself for a single
// output.
func outputPath(path string, outs Outputs, i int) string {
	if len(outs) > 1 {
		return fmt.Sprintf("%s[%d]", path, i)
	}
	return path
}

func (l *loader) checkOutputs(path string, outs Outputs, lakeTables []string) {
	for i, o := range outs {
		op := outputPath(path, outs, i)
		set := 0
		for _, on := range []bool{o.Stream != "", o.Table != "", o.Kafka != "", o.File != "", o.Webhook != "", o.Lake != ""} {
			if on {
				set++
			}
		}
		switch {
		case set != 1:
			l.addAt(op, op+" must name exactly one of stream, lake, table, kafka, file or webhook", "e.g. {table: revenue_per_minute}, {stream: purchases}, {lake: purchases}, {kafka: kafka://127.0.0.1:9092/purchases}, {file: out.ndjson} or {webhook: https://…}")
		case o.Webhook != "" && !strings.HasPrefix(o.Webhook, "http://") && !strings.HasPrefix(o.Webhook, "https://"):
			l.addAt(op+".webhook", fmt.Sprintf("%s.webhook %q is not an http(s) URL", op, o.Webhook), "e.g. webhook: https://hooks.example.com/sluice")
		case o.Time != "" && o.Lake == "":
			l.addAt(op+".time", op+".time is the partition column of a lake table; only a lake output has one", "remove time, or write to {lake: NAME, time: FIELD}")
		case o.Lake != "" && (!identRe.MatchString(o.Lake) || slices.Contains(lakeTables, o.Lake) || strings.HasPrefix(o.Lake, "sluice_")):
			l.addAt(op+".lake", fmt.Sprintf("%s.lake %q: a pipeline writes a lake table of its own (letters, digits, _), not events, bad, logs, a source's table or sluice_…", op, o.Lake), "e.g. lake: purchases")
		case o.Lake != "" && o.Time != "" && !identRe.MatchString(o.Time):
			l.addAt(op+".time", fmt.Sprintf("%s.time %q: use letters, digits and _", op, o.Time), "e.g. time: event_time")
		case o.Key != "" && o.Kafka == "":
			l.addAt(op+".key", op+".key is the key of Kafka records; only a kafka output has one", "remove key, or write to {kafka: kafka://…/topic, key: FIELD}")
		case o.Kafka != "":
			if k, err := ParseKafkaURL(o.Kafka); err != nil {
				l.addAt(op+".kafka", fmt.Sprintf("%s.kafka: %v", op, err), "e.g. kafka: kafka://127.0.0.1:9092/purchases")
			} else if k.Group != "" {
				l.addAt(op+".kafka", fmt.Sprintf("%s.kafka: group is for reading a topic, not writing one", op), "e.g. kafka: kafka://127.0.0.1:9092/purchases")
			}
		case o.Stream != "" && (!identRe.MatchString(o.Stream) || slices.Contains(sluice.Streams, o.Stream)):
			l.addAt(op+".stream", fmt.Sprintf("%s.stream %q: a pipeline writes a new stream (letters, digits, _), not raw, events, bad or logs", op, o.Stream), "e.g. stream: purchases")
		case o.Table != "" && !identRe.MatchString(o.Table):
			l.addAt(op+".table", fmt.Sprintf("%s.table %q: use letters, digits and _", op, o.Table), "e.g. table: revenue_per_minute")
		case o.Table != "" && (slices.Contains(lakeTables, o.Table) || strings.HasPrefix(o.Table, "sluice_")):
			l.addAt(op+".table", fmt.Sprintf("%s.table %q is a lake table's (or sluice's) name", op, o.Table), "pick a name of its own")
		}
	}
}

func (l *loader) checkWindow(path string, w *WindowStep) {
	switch w.Type {
	case "tumbling":
	case "hopping":
		if w.Every <= 0 || w.Size <= 0 || w.Size%w.Every != 0 {
			l.addAt(path+".every", path+".every must divide size", "e.g. {type: hopping, size: 10m, every: 1m}")
		}
	case "session":
		// Its bounds come from gap, and its result is written once.
		switch {
		case w.Gap == 0:
			l.addAtKey(path, path+": a session window needs gap: how long without events ends a session", "e.g. {type: session, gap: 30m, group_by: [user_id], aggregates: {pages: count()}}")
		case w.Gap < Duration(time.Second):
			l.addAt(path+".gap", fmt.Sprintf("%s.gap is %s; it must be at least 1s", path, w.Gap), "e.g. gap: 30m")
		}
		if w.Size != 0 {
			l.addAt(path+".size", path+".size: a session window has no size; its length follows the events", "remove size; gap ends a session")
		}
		if w.Every != 0 {
			l.addAt(path+".every", path+".every: a session window has no every; its length follows the events", "remove every; gap ends a session")
		}
		if w.Lateness != 0 {
			l.addAt(path+".allowed_lateness", path+".allowed_lateness: a session window is written once, when it closes, and never updated", "remove allowed_lateness; raise watermark to wait longer for out-of-order events")
		}
	default:
		l.addAt(path+".type", fmt.Sprintf("%s.type is %q", path, w.Type), "tumbling, hopping or session")
	}
	if w.Type != "session" {
		if w.Size < Duration(time.Second) {
			l.addAt(path+".size", fmt.Sprintf("%s.size is %s; it must be at least 1s", path, w.Size), "e.g. size: 1m")
		}
		if w.Gap != 0 {
			l.addAt(path+".gap", fmt.Sprintf("%s.gap is for session windows; this one is %s", path, w.Type), "remove gap, or make it {type: session, gap: 30m}")
		}
	}
	if w.Watermark < 0 || w.Lateness < 0 || w.Idle < 0 {
		l.addAt(path, path+": watermark, allowed_lateness and idle cannot be negative", "e.g. watermark: 5s")
	}
	if len(w.Aggregates) == 0 {
		l.addAt(path, path+" needs aggregates", "e.g. aggregates: {purchases: count(), revenue: sum(revenue)}")
	}
	for _, k := range sortedKeys(w.Aggregates) {
		if !identRe.MatchString(k) || k == "window_start" || k == "window_end" || slices.Contains(w.GroupBy, k) {
			l.addAt(path+".aggregates."+k, fmt.Sprintf("%s.aggregates: %q cannot be a result field name", path, k), "use letters, digits and _, not window_start or a group_by field")
		}
		if _, err := ParseAggregate(w.Aggregates[k]); err != nil {
			l.addAt(path+".aggregates."+k, fmt.Sprintf("%s.aggregates.%s: %v", path, k, err), "count(), sum(f), min(f), max(f), avg(f), distinct(f), quantile(f, 0.95)")
		}
	}
}

// PartitionKey is the field(s) that decide an event's worker: key, else the
// window's group_by, else the dedupe key, else the throttle key. Empty:
// whole input messages are split between the workers.
func (p Pipeline) PartitionKey() []string {
	if len(p.Key) > 0 {
		return p.Key
	}
	for _, s := range p.Steps {
		if s.Window != nil {
			return s.Window.GroupBy
		}
	}
	for _, s := range p.Steps {
		switch {
		case s.Dedupe != nil:
			return s.Dedupe.Key
		case s.Throttle != nil:
			return s.Throttle.Key
		}
	}
	return nil
}

// checkSplit tells whether the state of a pipeline's steps can be split
// between workers by its partition key: each window group, dedupe key and
// throttle key must fall on one worker, so the partition key must be some
// of their fields.
func (p Pipeline) checkSplit() error {
	key := p.PartitionKey()
	subset := func(of []string) bool {
		if len(key) == 0 {
			return false
		}
		for _, k := range key {
			if !slices.Contains(of, k) {
				return false
			}
		}
		return true
	}
	for i, s := range p.Steps {
		switch {
		case s.Window != nil && !subset(s.Window.GroupBy):
			if len(s.Window.GroupBy) == 0 {
				return fmt.Errorf("steps[%d]: a window without group_by is one aggregate, which cannot be split between %d workers", i, p.Workers)
			}
			return fmt.Errorf("steps[%d]: the window groups by %v, so key must be some of those fields, not %v", i, s.Window.GroupBy, key)
		case s.Dedupe != nil && !subset(s.Dedupe.Key):
			return fmt.Errorf("steps[%d]: dedupe remembers %v, so key must be some of those fields, not %v", i, s.Dedupe.Key, key)
		case s.Throttle != nil && !subset(s.Throttle.Key):
			if len(s.Throttle.Key) == 0 {
				return fmt.Errorf("steps[%d]: a throttle without a key is one limit, which cannot be split between %d workers", i, p.Workers)
			}
			return fmt.Errorf("steps[%d]: throttle limits per %v, so key must be some of those fields, not %v", i, s.Throttle.Key, key)
		}
	}
	return nil
}
