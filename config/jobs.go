package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/robfig/cron/v3"
	"github.com/sluice-data/sluice"
)

// Job is a unit of batch work (jobs.<name>): a body (sql, shell, extract,
// http, load or compact) that makes an output (a target) for one set of
// parameters, once the outputs it requires exist.
type Job struct {
	// Schedule starts runs on a clock: cron (five fields, UTC) or @hourly,
	// @daily, @weekly, @monthly. A run's date is the day the interval that
	// just ended began (Airflow's and Luigi's convention): @daily at
	// 00:00 on the 26th runs date 2026-11-25.
	Schedule string            `yaml:"schedule" json:"schedule,omitempty" jsonschema:"description=When runs start: cron (5 fields\\, UTC) or @hourly\\, @daily\\, @weekly\\, @monthly; a run's date is the day of the interval that just ended. Empty: runs start by hand (sluice jobs run) or as another job's requirement"`
	Params   map[string]string `yaml:"params" json:"params,omitempty" jsonschema:"description=Parameters and their types: date (YYYY-MM-DD)\\, time (RFC 3339 in UTC\\, 2026-11-25T10:00:00Z)\\, int or string\\, e.g. {date: date}. They are templated into SQL\\, commands and paths as {{.date}}"`
	Requires []Requirement     `yaml:"requires" json:"requires,omitempty" jsonschema:"description=What must exist before a run: {job: NAME\\, params: {date: '{{.date}}'}} (another job's output for those parameters\\, run first when missing) or an external target {table: …}\\, {lake: …}\\, {file: …}"`
	Output   Target            `yaml:"output" json:"output,omitempty" jsonschema:"description=What a run makes; a run whose output exists is never repeated unless forced. {table: NAME\\, partition_by: dt} (a warehouse table partition\\, recorded in sluice_job_outputs with the data)\\, {file: PATH}\\, or {lake: TABLE} for extract and http jobs; a plain name is a table"`
	SQL      string            `yaml:"sql" json:"sql,omitempty" jsonschema:"description=The body: SQL on the warehouse (DuckDB or PostgreSQL)\\, or the name of a .sql file next to the config. With a table output it is a SELECT whose rows replace the partition"`
	Shell    *ShellBody        `yaml:"shell" json:"shell,omitempty"`
	Compact  *CompactBody      `yaml:"compact" json:"compact,omitempty"`
	Extract  *ExtractBody      `yaml:"extract" json:"extract,omitempty"`
	HTTP     *HTTPBody         `yaml:"http" json:"http,omitempty"`
	Load     *LoadBody         `yaml:"load" json:"load,omitempty"`
	Rollup   *RollupBody       `yaml:"rollup" json:"rollup,omitempty"`
	// Retries is how many more times a failed run is tried, after
	// RetryDelay, doubling each time.
	Retries    int      `yaml:"retries" json:"retries,omitempty" jsonschema:"minimum=0,maximum=100,description=How many more times a failed run is tried (default 2)"`
	RetryDelay Duration `yaml:"retry_delay" json:"retry_delay,omitempty" jsonschema:"description=Wait before the first retry\\, doubled for each next (default 10s\\, at most 1h)"`
	Timeout    Duration `yaml:"timeout" json:"timeout,omitempty" jsonschema:"description=A run attempt taking longer is cancelled and counts as failed (default 1h)"`
	// Concurrency bounds the runs of this job at once (each with other
	// parameters); Resources are units of the scheduler's resources.
	Concurrency int            `yaml:"concurrency" json:"concurrency,omitempty" jsonschema:"description=Runs of this job at once in one process (default 4)"`
	Resources   map[string]int `yaml:"resources" json:"resources,omitempty" jsonschema:"description=Units of scheduler.resources a run holds\\, e.g. {warehouse: 1}"`
	// DisableAfter failed runs (after their retries) within DisableWindow
	// disable the job until `sluice jobs enable NAME`.
	DisableAfter  int      `yaml:"disable_after" json:"disable_after,omitempty" jsonschema:"description=Failed runs (after retries) within disable_window that disable the job until sluice jobs enable (default 3)"`
	DisableWindow Duration `yaml:"disable_window" json:"disable_window,omitempty" jsonschema:"description=Default 1h"`
}

// Requirement is what a job needs first: another job's output for some
// parameters, or an external target.
type Requirement struct {
	Job    string            `yaml:"job" json:"job,omitempty" jsonschema:"description=A job whose output must exist (it runs first when missing)"`
	Params map[string]string `yaml:"params" json:"params,omitempty" jsonschema:"description=Its parameters\\, as templates over this job's\\, e.g. {date: '{{add_days .date -1}}'}. Default: the parameters of the same name"`
	// An external target instead of a job (see Target).
	Table     string `yaml:"table" json:"table,omitempty" jsonschema:"description=A warehouse table partition recorded in sluice_job_outputs"`
	Partition string `yaml:"partition" json:"partition,omitempty" jsonschema:"description=table or lake: the partition\\, a template (default {{.date}})"`
	File      string `yaml:"file" json:"file,omitempty" jsonschema:"description=A file that must exist (a template)"`
	Lake      string `yaml:"lake" json:"lake,omitempty" jsonschema:"description=A lake table whose day partition (dt=date) must be committed and over"`
}

// Target is the external target a requirement names (zero for a job).
func (r Requirement) Target() Target {
	return Target{Table: r.Table, Partition: r.Partition, File: r.File, Lake: r.Lake}
}

// Target is an output: exactly one of Table, File and Lake.
type Target struct {
	// Table is a warehouse table partition: present when
	// sluice_job_outputs records it, in the transaction that wrote it.
	Table string `yaml:"table" json:"table,omitempty" jsonschema:"description=A warehouse table\\, complete for a partition when sluice_job_outputs records it"`
	// PartitionBy is the table's column holding the partition; the SQL's
	// rows replace the rows whose column equals Partition.
	PartitionBy string `yaml:"partition_by" json:"partition_by,omitempty" jsonschema:"description=table: the column that holds the partition (default dt); a run replaces the rows whose column equals the partition"`
	// Partition is the partition value, a template (default {{.date}}, or
	// the parameters joined by /).
	Partition string `yaml:"partition" json:"partition,omitempty" jsonschema:"description=table or lake: the partition\\, a template over the parameters (default {{.date}})"`
	// File exists when the file (or the object, s3://) exists; a job's
	// file output is written to a temporary name and renamed.
	File string `yaml:"file" json:"file,omitempty" jsonschema:"description=A file path (a template)\\, complete when it exists; a job writes it through $SLUICE_OUTPUT\\, renamed into place when the run succeeds"`
	// Lake is a lake table. As a requirement, its day partition: complete
	// when it holds committed files and the day is over. As the output of
	// an extract or http job: complete when the run's rows are committed
	// to the lake and its done record (jobs.done.<task>) is written.
	Lake string `yaml:"lake" json:"lake,omitempty" jsonschema:"description=A lake table. Required: complete for a date when its dt= partition holds committed files and the day has ended (plus lake.compaction.after). The output of an extract or http job: complete when the run's rows are committed to the lake"`
}

// UnmarshalYAML takes a plain name for a table target.
func (t *Target) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err == nil {
		*t = Target{Table: s}
		return nil
	}
	type plain Target
	return unmarshal((*plain)(t))
}

// IsZero tells whether no target is set.
func (t Target) IsZero() bool { return t.Table == "" && t.File == "" && t.Lake == "" }

// String names a target.
func (t Target) String() string {
	switch {
	case t.Table != "":
		return "table " + t.Table
	case t.File != "":
		return "file " + t.File
	case t.Lake != "":
		return "lake " + t.Lake
	}
	return "nothing"
}

// ShellBody runs a command.
type ShellBody struct {
	Command string            `yaml:"command" json:"command" jsonschema:"description=A command for sh -c (a template over the parameters); exit code 0 is success"`
	Env     map[string]string `yaml:"env" json:"env,omitempty" jsonschema:"description=Extra environment variables (templates); the parameters are also in SLUICE_PARAM_<NAME>\\, the output file in SLUICE_OUTPUT"`
	Dir     string            `yaml:"dir" json:"dir,omitempty" jsonschema:"description=Working directory (default: the config file's)"`
}

// ExtractBody copies a table of PostgreSQL or MySQL/MariaDB into the job's
// lake output: in pages, each one short query ordered by the cursor and the
// key (keyset pagination), so that no long transaction is held on the
// source. Without cursor every run copies the whole table; with one, a run
// copies the rows whose cursor is past where the last run ended.
type ExtractBody struct {
	From string `yaml:"from" json:"from" jsonschema:"description=The source database: postgres://user:password@host:5432/db or mysql://user:password@tcp(host:3306)/db (also mysql://user:password@host:3306/db). Use ${VAR} for secrets"`
	// Table is [schema.]table.
	Table   string     `yaml:"table" json:"table" jsonschema:"description=The table to read\\, optionally schema.table"`
	Columns StringList `yaml:"columns" json:"columns,omitempty" jsonschema:"description=The columns to copy (default: all); the key and cursor are always copied"`
	Where   string     `yaml:"where" json:"where,omitempty" jsonschema:"description=An SQL condition on the source's rows (a template over the parameters)\\, e.g. created_at < '{{add_days .date 1}}'"`
	// Cursor makes the extract incremental; its last value is kept in
	// the bus's state bucket (jobs.state.<job>).
	Cursor string     `yaml:"cursor" json:"cursor,omitempty" jsonschema:"description=A column that grows when a row is inserted or changed (updated_at\\, or id for insert-only tables): each run copies the rows past the last run's end. Empty: every run copies the whole table"`
	Key    StringList `yaml:"key" json:"key" jsonschema:"description=The table's unique key (one column or a list): the order of pages\\, and the tie-breaker between rows with one cursor value"`
	Page   int        `yaml:"page" json:"page,omitempty" jsonschema:"minimum=1,maximum=1000000,description=Rows per query (default 10000)"`
	// Decimals is how numeric/decimal columns are kept: double (default)
	// or varchar (exact text).
	Decimals string `yaml:"decimals" json:"decimals,omitempty" jsonschema:"enum=double,enum=varchar,description=numeric/decimal columns as DOUBLE (default) or as exact text (VARCHAR)"`
}

// Incremental tells whether runs copy only what changed since the last.
func (e ExtractBody) Incremental() bool { return e.Cursor != "" }

// HTTPBody reads a paginated JSON API into the job's lake output.
type HTTPBody struct {
	URL     string            `yaml:"url" json:"url" jsonschema:"description=The first page (a template over the parameters)"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty" jsonschema:"description=Request headers (templates)\\, e.g. {Authorization: 'Bearer ${API_TOKEN}'}"`
	// Records is a dotted path to the array of records in a response.
	Records string `yaml:"records" json:"records,omitempty" jsonschema:"description=Where the records are in a response: a dotted path to an array\\, e.g. data.items (default: the response is the array)"`
	// Paginate is how the next page is found.
	Paginate string `yaml:"paginate" json:"paginate,omitempty" jsonschema:"enum=link,enum=cursor,enum=page,enum=none,description=How the next page is found: link (the Link header's rel=next\\, default)\\, cursor (a field of the response\\, sent back as a query parameter)\\, page (page numbers until an empty page) or none"`
	Cursor   string `yaml:"cursor" json:"cursor,omitempty" jsonschema:"description=paginate: cursor: the dotted path of the next page's cursor in a response; absent\\, null or empty on the last page"`
	// Param is the query parameter of the cursor or the page number.
	Param string `yaml:"param" json:"param,omitempty" jsonschema:"description=paginate: cursor or page: the query parameter that takes the cursor (default cursor) or the page number (default page)"`
	// FirstPage is the number of the first page (paginate: page).
	FirstPage int `yaml:"first_page" json:"first_page,omitempty" jsonschema:"description=paginate: page: the first page's number (default 1)"`
	// Rate bounds the requests per second.
	Rate    float64  `yaml:"rate" json:"rate,omitempty" jsonschema:"minimum=0,description=Requests per second at most (default 10; 0 also means 10)"`
	Retries int      `yaml:"retries" json:"retries,omitempty" jsonschema:"minimum=0,maximum=100,description=Retries of a request that failed (a network error\\, 429 or 5xx)\\, with exponential backoff from 1s that honours Retry-After (default 5)"`
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty" jsonschema:"description=How long one request may take (default 30s)"`
}

// LoadBody copies a lake table into a PostgreSQL database by COPY, as the
// PostgreSQL warehouse loads the lake: the hours whose files changed since
// the last load, each in one transaction with its record in _sluice_loads.
type LoadBody struct {
	From string `yaml:"from" json:"from" jsonschema:"description=The lake table to load"`
	To   string `yaml:"to" json:"to" jsonschema:"description=The database: postgres://user:password@host:5432/db (a search_path parameter picks the schema); the table has the lake table's name"`
}

// RollupBody rebuilds an interval of a rollup from the lake: the batch half
// of the lambda architecture, e.g. each night for the day before.
type RollupBody struct {
	Name string `yaml:"name" json:"name" jsonschema:"description=The rollup (rollups.<name>)"`
	From string `yaml:"from" json:"from,omitempty" jsonschema:"description=The interval's start\\, RFC 3339 or YYYY-MM-DD (a template; default {{.date}})"`
	To   string `yaml:"to" json:"to,omitempty" jsonschema:"description=Its end\\, excluded (a template; default {{add_days .date 1}})"`
}

// CompactBody compacts the lake's closed partitions.
type CompactBody struct {
	Tables []string `yaml:"tables" json:"tables,omitempty" jsonschema:"description=Lake tables to compact (default: all)"`
}

// Scheduler configures how jobs run.
type Scheduler struct {
	// Parallel bounds the runs of one process at once.
	Parallel  int            `yaml:"parallel" json:"parallel,omitempty" jsonschema:"description=Runs at once in one process (default 4)"`
	Resources map[string]int `yaml:"resources" json:"resources,omitempty" jsonschema:"description=Named resources and how many units a process has\\, e.g. {warehouse: 2}; jobs hold units while they run"`
}

// JobDefaults fill in what a job leaves out.
func (j *Job) defaults(given func(key string) bool) {
	if !given("retries") {
		j.Retries = 2
	}
	if j.RetryDelay == 0 {
		j.RetryDelay = Duration(10 * time.Second)
	}
	if j.Timeout == 0 {
		j.Timeout = Duration(time.Hour)
	}
	if j.Concurrency == 0 {
		j.Concurrency = 4
	}
	if j.DisableAfter == 0 {
		j.DisableAfter = 3
	}
	if j.DisableWindow == 0 {
		j.DisableWindow = Duration(time.Hour)
	}
	if j.Output.Table != "" && j.Output.PartitionBy == "" {
		j.Output.PartitionBy = "dt"
	}
	if e := j.Extract; e != nil {
		if e.Page == 0 {
			e.Page = 10000
		}
		if e.Decimals == "" {
			e.Decimals = "double"
		}
		if e.Incremental() && !given("concurrency") {
			j.Concurrency = 1
		}
	}
	if h := j.HTTP; h != nil {
		if h.Paginate == "" {
			h.Paginate = "link"
		}
		if h.Param == "" && h.Paginate == "cursor" {
			h.Param = "cursor"
		}
		if h.Param == "" && h.Paginate == "page" {
			h.Param = "page"
		}
		if h.FirstPage == 0 && !given("http.first_page") {
			h.FirstPage = 1
		}
		if h.Rate == 0 {
			h.Rate = 10
		}
		if !given("http.retries") {
			h.Retries = 5
		}
		if h.Timeout == 0 {
			h.Timeout = Duration(30 * time.Second)
		}
	}
}

// WritesLake tells whether the job's body writes its lake output (extract,
// http): the output is then complete when a run's rows are committed.
func (j Job) WritesLake() bool { return j.Output.Lake != "" && (j.Extract != nil || j.HTTP != nil) }

// ExtractTimeColumn is the column of the rows of extract and http jobs
// that holds when they were read; their lake tables are partitioned by it.
const ExtractTimeColumn = "_extracted_at"

// jobLakeOutputs are the lake tables jobs write, by name, with their time
// (partition) column.
func (c *Config) jobLakeOutputs() map[string]string {
	out := map[string]string{}
	for _, j := range c.Jobs {
		if j.WritesLake() {
			out[j.Output.Lake] = ExtractTimeColumn
		}
	}
	return out
}

// DefaultPartition is a job's partition template when its target gives
// none: {{.date}} for a job with a date parameter, else the parameters
// joined by /.
func (j Job) DefaultPartition() string {
	if j.Params["date"] == "date" {
		return "{{.date}}"
	}
	var parts []string
	for _, p := range sortedKeys(j.Params) {
		parts = append(parts, "{{."+p+"}}")
	}
	return strings.Join(parts, "/")
}

// JobFuncs are the functions templates of jobs may call.
var JobFuncs = template.FuncMap{
	// add_days "2026-11-25" -1 = "2026-11-24"
	"add_days": func(date string, n int) (string, error) {
		t, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return "", fmt.Errorf("add_days: %q is not a date (YYYY-MM-DD)", date)
		}
		return t.AddDate(0, 0, n).Format(time.DateOnly), nil
	},
	// add_hours "2026-11-25T10:00:00Z" 2 = "2026-11-25T12:00:00Z"
	"add_hours": func(at string, n int) (string, error) {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return "", fmt.Errorf("add_hours: %q is not a time (RFC 3339)", at)
		}
		return t.UTC().Add(time.Duration(n) * time.Hour).Format(time.RFC3339), nil
	},
	// quote makes a SQL string literal.
	"quote": func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" },
}

// ParseJobTemplate parses a template of a job (SQL, a command, a path).
func ParseJobTemplate(name, text string) (*template.Template, error) {
	return template.New(name).Funcs(JobFuncs).Option("missingkey=error").Parse(text)
}

// ParseSchedule reads a job's schedule.
func ParseSchedule(s string) (cron.Schedule, error) {
	return cron.ParseStandard(s)
}

var paramTypes = []string{"date", "time", "int", "string"}

// sqlFileRe is an sql value that names a file rather than holding SQL.
var sqlFileRe = regexp.MustCompile(`^[^\n;]+\.sql$`)

func (l *loader) validateJobs(c *Config) {
	for _, name := range sortedKeys(c.Jobs) {
		j := c.Jobs[name]
		path := "jobs." + name
		if !identRe.MatchString(name) {
			l.addAtKey(path, fmt.Sprintf("job name %q: use letters, digits and _", name), "e.g. daily_revenue")
		}
		if j.Schedule != "" {
			if _, err := ParseSchedule(j.Schedule); err != nil {
				l.addAt(path+".schedule", fmt.Sprintf("%s.schedule %q: %v", path, j.Schedule, err), "cron with five fields (minute hour day month weekday, UTC), or @hourly, @daily, @weekly, @monthly")
			}
		}
		for _, p := range sortedKeys(j.Params) {
			if !identRe.MatchString(p) {
				l.addAtKey(path+".params."+p, fmt.Sprintf("%s.params: %q is not a parameter name", path, p), "use letters, digits and _")
			}
			if !slices.Contains(paramTypes, j.Params[p]) {
				l.addAt(path+".params."+p, fmt.Sprintf("%s.params.%s has type %q", path, p, j.Params[p]), "date, time, int or string")
			}
		}
		l.checkSchedule(path, j)
		bodies := 0
		for _, on := range []bool{j.SQL != "", j.Shell != nil, j.Compact != nil, j.Extract != nil, j.HTTP != nil, j.Load != nil, j.Rollup != nil} {
			if on {
				bodies++
			}
		}
		if bodies != 1 {
			l.addAtKey(path, fmt.Sprintf("job %s needs exactly one body: sql, shell, extract, http, load, rollup or compact", name), "e.g. sql: daily_revenue.sql")
		}
		if sqlFileRe.MatchString(strings.TrimSpace(j.SQL)) {
			file := strings.TrimSpace(j.SQL)
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(l.file), file)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				l.addAt(path+".sql", fmt.Sprintf("%s.sql: %v", path, err), "a .sql file next to the config, or the SQL itself")
			} else {
				j.SQL = string(b)
			}
		}
		l.checkTemplate(path+".sql", j.SQL)
		if s := j.Shell; s != nil {
			if strings.TrimSpace(s.Command) == "" {
				l.addAt(path+".shell", path+".shell needs command", "e.g. shell: {command: ./export.sh {{.date}}}")
			}
			l.checkTemplate(path+".shell.command", s.Command)
			for _, k := range sortedKeys(s.Env) {
				l.checkTemplate(path+".shell.env."+k, s.Env[k])
			}
			if s.Dir == "" {
				s.Dir = filepath.Dir(l.file)
			}
		}
		if j.Compact != nil && !j.Output.IsZero() {
			l.addAt(path+".output", fmt.Sprintf("%s: a compact job has no output", path), "remove output")
		}
		if ld := j.Load; ld != nil {
			l.checkLoad(c, path+".load", ld)
			if !j.Output.IsZero() {
				l.addAt(path+".output", fmt.Sprintf("%s: a load job has no output: it runs whenever it is asked or scheduled, and a run copies only what changed", path), "remove output")
			}
		}
		if rb := j.Rollup; rb != nil {
			if _, ok := c.Rollups[rb.Name]; !ok {
				l.addAt(path+".rollup.name", fmt.Sprintf("%s.rollup.name: no rollup %q", path, rb.Name), "the rollups are "+strings.Join(sortedKeys(c.Rollups), ", "))
			}
			if (rb.From == "" || rb.To == "") && j.Params["date"] != "date" {
				l.addAt(path+".rollup", fmt.Sprintf("%s.rollup needs from and to, or a date parameter (params: {date: date}) for the day", path), "e.g. rollup: {name: pageviews_1m, from: '{{.hour}}', to: '{{add_hours .hour 1}}'}")
			}
			if rb.From == "" {
				rb.From = "{{.date}}"
			}
			if rb.To == "" {
				rb.To = "{{add_days .date 1}}"
			}
			l.checkTemplate(path+".rollup.from", rb.From)
			l.checkTemplate(path+".rollup.to", rb.To)
			if !j.Output.IsZero() {
				l.addAt(path+".output", fmt.Sprintf("%s: a rollup job has no output: it runs whenever it is asked or scheduled, and a rebuild is exact each time", path), "remove output")
			}
		}
		if j.SQL != "" && j.Output.File != "" {
			l.addAt(path+".output.file", fmt.Sprintf("%s: an sql job writes a table, not a file", path), "output: {table: NAME}, or use a shell job")
		}
		switch {
		case j.Extract != nil || j.HTTP != nil:
			l.checkLakeOutput(c, path, j)
			if j.Extract != nil {
				l.checkExtract(path+".extract", j)
			} else {
				l.checkHTTP(path+".http", j.HTTP)
			}
		case j.Output.Lake != "":
			l.addAt(path+".output.lake", fmt.Sprintf("%s: only extract and http jobs write a lake table; a lake target can be required", path), "output: {table: NAME} or {file: PATH}")
		}
		l.checkTarget(path+".output", j.Output, false)
		if j.Output.IsZero() && j.Compact == nil && j.Load == nil && j.Rollup == nil {
			l.addAtKey(path, fmt.Sprintf("job %s has no output: without one a run cannot tell whether it is done", name), "output: {table: NAME} (with sql), {file: PATH} or {lake: TABLE} (with extract or http)")
		}
		for i, r := range j.Requires {
			rp := fmt.Sprintf("%s.requires[%d]", path, i)
			switch {
			case r.Job != "" && !r.Target().IsZero():
				l.addAt(rp, rp+" names a job and a target; give one", "{job: NAME} or {table: …}, {lake: …}, {file: …}")
			case r.Job != "":
				dep, ok := c.Jobs[r.Job]
				if !ok {
					l.addAt(rp+".job", fmt.Sprintf("%s.job: no job %q", rp, r.Job), "the jobs are "+strings.Join(sortedKeys(c.Jobs), ", "))
					continue
				}
				for _, p := range sortedKeys(r.Params) {
					if _, ok := dep.Params[p]; !ok {
						l.addAtKey(rp+".params."+p, fmt.Sprintf("%s.params: job %s has no parameter %q", rp, r.Job, p), "its parameters are "+strings.Join(sortedKeys(dep.Params), ", "))
					}
					l.checkTemplate(rp+".params."+p, r.Params[p])
				}
				for _, p := range sortedKeys(dep.Params) {
					if _, given := r.Params[p]; !given {
						if _, same := j.Params[p]; !same {
							l.addAt(rp+".params", fmt.Sprintf("%s: job %s needs parameter %s, which %s does not have", rp, r.Job, p, name), fmt.Sprintf("params: {%s: '{{…}}'}", p))
						}
					}
				}
			default:
				l.checkTarget(rp, r.Target(), true)
				if r.Target().IsZero() {
					l.addAt(rp, rp+" needs job, table, lake or file", "e.g. {job: extract_orders} or {lake: events}")
				}
			}
		}
		if j.Retries < 0 || j.Retries > 100 || j.Concurrency < 0 || j.DisableAfter < 0 {
			l.addAtKey(path, path+": retries, concurrency and disable_after cannot be negative (retries at most 100)", "e.g. retries: 3")
		}
		for _, r := range sortedKeys(j.Resources) {
			if _, ok := c.Scheduler.Resources[r]; !ok {
				l.addAt(path+".resources."+r, fmt.Sprintf("%s.resources: no resource %q in scheduler.resources", path, r), "declare it: scheduler: {resources: {"+r+": 2}}")
			}
		}
		j.defaults(func(key string) bool { return l.values[path+"."+key] != nil })
		c.Jobs[name] = j
	}
	l.checkCycles(c)
}

func (l *loader) checkTemplate(path, text string) {
	if text == "" {
		return
	}
	if _, err := ParseJobTemplate(path, text); err != nil {
		l.addAt(path, fmt.Sprintf("%s: %v", path, err), "templates use Go's text/template: {{.date}}, {{add_days .date -1}}, {{quote .name}}")
	}
}

func (l *loader) checkTarget(path string, t Target, required bool) {
	n := 0
	for _, on := range []bool{t.Table != "", t.File != "", t.Lake != ""} {
		if on {
			n++
		}
	}
	if n > 1 {
		l.addAt(path, path+" names more than one of table, file and lake", "one target each")
	}
	if t.Table != "" && !identRe.MatchString(t.Table) {
		l.addAt(path+".table", fmt.Sprintf("%s.table %q: use letters, digits and _", path, t.Table), "e.g. table: daily_revenue")
	}
	if t.PartitionBy != "" && !identRe.MatchString(t.PartitionBy) {
		l.addAt(path+".partition_by", fmt.Sprintf("%s.partition_by %q: use letters, digits and _", path, t.PartitionBy), "e.g. partition_by: dt")
	}
	if t.Lake != "" && !identRe.MatchString(t.Lake) {
		l.addAt(path+".lake", fmt.Sprintf("%s.lake %q: use letters, digits and _", path, t.Lake), "e.g. lake: events")
	}
	l.checkTemplate(path+".partition", t.Partition)
	l.checkTemplate(path+".file", t.File)
}

// sourceColumnRe and sourceTableRe are a source's column and table names: an SQL identifier, the
// table optionally with its schema.
var (
	sourceColumnRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)
	sourceTableRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$`)
)

// checkLakeOutput checks the lake table an extract or http job writes: a
// table of its own, not one sluice or a pipeline writes.
func (l *loader) checkLakeOutput(c *Config, path string, j Job) {
	lk := j.Output.Lake
	switch {
	case lk == "":
		l.addAt(path+".output", fmt.Sprintf("%s: an extract or http job writes a lake table", path), "output: {lake: orders}")
		return
	case j.Output.Table != "" || j.Output.File != "":
		return // checkTarget names it
	case !identRe.MatchString(lk) || slices.Contains(sluice.Streams, lk) || slices.Contains(c.SourceStreams(), lk) || strings.HasPrefix(lk, "sluice_"):
		l.addAt(path+".output.lake", fmt.Sprintf("%s.output.lake %q: a job writes a lake table of its own (letters, digits, _), not raw, events, bad, logs, a source's table or sluice_…", path, lk), "e.g. lake: orders")
		return
	case j.Output.Partition != "":
		l.addAt(path+".output.partition", fmt.Sprintf("%s: the lake output of an extract or http job has no partition to name: a run is done when its rows are in the lake", path), "remove partition")
	}
	for _, pname := range sortedKeys(c.Pipelines) {
		for _, o := range allOutputs(c.Pipelines[pname]) {
			if o.BusStream() == lk {
				l.addAt(path+".output.lake", fmt.Sprintf("%s.output.lake %q is written by pipeline %s too", path, lk, pname), "give the job's table a name of its own")
				return
			}
		}
	}
}

func (l *loader) checkExtract(path string, j Job) {
	e := j.Extract
	if _, _, err := SourceDB(e.From); err != nil {
		l.addAt(path+".from", fmt.Sprintf("%s.from: %v", path, err), "postgres://user:password@host:5432/db or mysql://user:password@tcp(host:3306)/db")
	}
	if !sourceTableRe.MatchString(e.Table) {
		l.addAt(path+".table", fmt.Sprintf("%s.table %q: name a table (letters, digits, _), optionally schema.table", path, e.Table), "e.g. table: orders")
	}
	if len(e.Key) == 0 {
		l.addAt(path+".key", fmt.Sprintf("%s needs key: the table's unique key orders its pages", path), "e.g. key: id (or a list, key: [order_id, line])")
	}
	for i, k := range e.Key {
		if !sourceColumnRe.MatchString(k) {
			l.addAt(fmt.Sprintf("%s.key", path), fmt.Sprintf("%s.key[%d] %q is not a column name", path, i, k), "e.g. key: id")
		}
	}
	for i, k := range e.Columns {
		if !sourceColumnRe.MatchString(k) {
			l.addAt(fmt.Sprintf("%s.columns", path), fmt.Sprintf("%s.columns[%d] %q is not a column name", path, i, k), "e.g. columns: [id, amount, updated_at]")
		}
	}
	if e.Cursor != "" && !sourceColumnRe.MatchString(e.Cursor) {
		l.addAt(path+".cursor", fmt.Sprintf("%s.cursor %q is not a column name", path, e.Cursor), "e.g. cursor: updated_at")
	}
	if e.Page < 0 || e.Page > 1_000_000 {
		l.addAt(path+".page", fmt.Sprintf("%s.page is %d; it must be between 1 and 1000000", path, e.Page), "the default is 10000")
	}
	if e.Decimals != "" && e.Decimals != "double" && e.Decimals != "varchar" {
		l.addAt(path+".decimals", fmt.Sprintf("%s.decimals is %q; write double or varchar", path, e.Decimals), "double (the default) sums easily; varchar keeps every digit")
	}
	l.checkTemplate(path+".where", e.Where)
	if e.Incremental() && j.Concurrency > 1 {
		jp := strings.TrimSuffix(path, ".extract")
		l.addAt(jp+".concurrency", fmt.Sprintf("%s: the runs of an incremental extract share one cursor, so they run one at a time", jp), "remove concurrency")
	}
}

func (l *loader) checkHTTP(path string, h *HTTPBody) {
	switch {
	case h.URL == "":
		l.addAt(path+".url", path+" needs url: the first page", "e.g. url: https://api.example.com/v1/orders?since={{.date}}")
	case !strings.HasPrefix(h.URL, "http://") && !strings.HasPrefix(h.URL, "https://"):
		l.addAt(path+".url", fmt.Sprintf("%s.url %q is not an http(s) URL", path, h.URL), "e.g. url: https://api.example.com/v1/orders")
	}
	l.checkTemplate(path+".url", h.URL)
	for _, k := range sortedKeys(h.Headers) {
		l.checkTemplate(path+".headers."+k, h.Headers[k])
	}
	switch h.Paginate {
	case "", "link", "page", "none":
		if h.Cursor != "" {
			l.addAt(path+".cursor", fmt.Sprintf("%s.cursor is the next page's cursor in a response; it needs paginate: cursor", path), "paginate: cursor, or remove cursor")
		}
	case "cursor":
		if h.Cursor == "" {
			l.addAt(path+".paginate", fmt.Sprintf("%s: paginate: cursor needs cursor, the path of the next page's cursor in a response", path), "e.g. cursor: meta.next_cursor")
		}
	default:
		l.addAt(path+".paginate", fmt.Sprintf("%s.paginate is %q; write link, cursor, page or none", path, h.Paginate), "link follows the Link header's rel=next")
	}
	if h.Param != "" && h.Paginate != "cursor" && h.Paginate != "page" {
		l.addAt(path+".param", fmt.Sprintf("%s.param names the query parameter of a cursor or page number; it needs paginate: cursor or page", path), "remove param")
	}
	if h.Rate < 0 || h.Retries < 0 || h.Retries > 100 || h.Timeout < 0 {
		l.addAtKey(path, path+": rate, retries and timeout cannot be negative (retries at most 100)", "e.g. rate: 5")
	}
}

func (l *loader) checkLoad(c *Config, path string, ld *LoadBody) {
	if !identRe.MatchString(ld.From) {
		l.addAt(path+".from", fmt.Sprintf("%s.from %q: name a lake table", path, ld.From), "e.g. from: orders")
	}
	switch {
	case !strings.HasPrefix(ld.To, "postgres://") && !strings.HasPrefix(ld.To, "postgresql://"):
		l.addAt(path+".to", fmt.Sprintf("%s.to %q is not a postgres:// URL", path, redactURL(ld.To)), pgHint)
	default:
		if _, err := pgconn.ParseConfig(ld.To); err != nil {
			l.addAt(path+".to", fmt.Sprintf("%s.to: %v", path, err), pgHint)
		}
	}
}

// SourceDB reads an extract's from: the database/sql driver ("pgx" or
// "mysql") and its data source name. MySQL takes the driver's DSN after
// mysql:// (user:password@tcp(host:3306)/db) or a URL
// (mysql://user:password@host:3306/db); times are read as times, in UTC.
func SourceDB(from string) (driver, dsn string, err error) {
	switch {
	case strings.HasPrefix(from, "postgres://"), strings.HasPrefix(from, "postgresql://"):
		if _, err := pgconn.ParseConfig(from); err != nil {
			return "", "", err
		}
		return "pgx", from, nil
	case strings.HasPrefix(from, "mysql://"):
		rest := strings.TrimPrefix(from, "mysql://")
		if !strings.Contains(rest, "@tcp(") && !strings.Contains(rest, "@unix(") && !strings.HasPrefix(rest, "tcp(") && !strings.HasPrefix(rest, "unix(") {
			u, err := url.Parse(from)
			if err != nil {
				return "", "", err
			}
			cfg := mysql.NewConfig()
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
			cfg.Net, cfg.Addr, cfg.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
			if u.Port() == "" {
				cfg.Addr = u.Host + ":3306"
			}
			for k, v := range u.Query() {
				if cfg.Params == nil {
					cfg.Params = map[string]string{}
				}
				cfg.Params[k] = v[0]
			}
			rest = cfg.FormatDSN()
		}
		cfg, err := mysql.ParseDSN(rest)
		if err != nil {
			return "", "", err
		}
		if cfg.DBName == "" {
			return "", "", errors.New("name the database: mysql://user:password@tcp(host:3306)/db")
		}
		cfg.ParseTime, cfg.Loc = true, time.UTC
		return "mysql", cfg.FormatDSN(), nil
	case from == "":
		return "", "", errors.New("name the source database")
	}
	return "", "", fmt.Errorf("%q is neither a postgres:// nor a mysql:// URL", redactURL(from))
}

// redactURL hides a password in a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return s
}

// checkCycles refuses jobs that require themselves, directly or not.
func (l *loader) checkCycles(c *Config) {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(name string, stack []string) bool
	visit = func(name string, stack []string) bool {
		switch state[name] {
		case visiting:
			cycle := append(stack[slices.Index(stack, name):], name)
			l.addAt("jobs."+stack[len(stack)-1]+".requires", "jobs require each other in a cycle: "+strings.Join(cycle, " → "), "break the cycle")
			return false
		case done:
			return true
		}
		state[name] = visiting
		for _, r := range c.Jobs[name].Requires {
			if _, ok := c.Jobs[r.Job]; ok && !visit(r.Job, append(stack, name)) {
				return false
			}
		}
		state[name] = done
		return true
	}
	for _, name := range sortedKeys(c.Jobs) {
		if !visit(name, nil) {
			return
		}
	}
}

// checkSchedule: a scheduled run gets its interval's start in its one
// parameter, a date (the day) or a time (the instant). A date names one
// interval only when intervals are a day or longer; without a parameter,
// a job with an output would find it done after the first interval.
func (l *loader) checkSchedule(path string, j Job) {
	if j.Schedule == "" {
		return
	}
	sched, err := ParseSchedule(j.Schedule)
	if err != nil {
		return // reported above
	}
	var typ string
	for _, t := range j.Params {
		typ = t
	}
	hasOutput := !j.Output.IsZero()
	switch {
	case len(j.Params) > 1 || (len(j.Params) == 1 && typ != "date" && typ != "time"):
		l.addAt(path+".schedule", fmt.Sprintf("%s: a scheduled job has one parameter, a date or a time (its interval's start), or none", path), "params: {date: date} for @daily, {at: time} for @hourly")
	case len(j.Params) == 0 && hasOutput:
		l.addAt(path+".schedule", fmt.Sprintf("%s: a scheduled job with an output needs a date or time parameter: without one, every interval after the first finds its output done", path), "params: {date: date} for @daily, {at: time} for @hourly")
	case typ == "date":
		start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
		first := sched.Next(start)
		if sched.Next(first).Sub(first) < 24*time.Hour {
			l.addAt(path+".schedule", fmt.Sprintf("%s: %q runs more than once a day, but a date parameter names a day: every run after the day's first would find its output done", path, j.Schedule), "use a time parameter: params: {at: time}, with {{.at}} in the SQL and the output's partition")
		}
	}
}
