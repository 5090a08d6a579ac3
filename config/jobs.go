package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/robfig/cron/v3"
)

// Job is a unit of batch work (jobs.<name>): a body (sql, shell or
// compact) that makes an output (a target) for one set of parameters, once
// the outputs it requires exist.
type Job struct {
	// Schedule starts runs on a clock: cron (five fields, UTC) or @hourly,
	// @daily, @weekly, @monthly. A run's date is the day the interval that
	// just ended began (Airflow's and Luigi's convention): @daily at
	// 00:00 on the 26th runs date 2026-11-25.
	Schedule string            `yaml:"schedule" json:"schedule,omitempty" jsonschema:"description=When runs start: cron (5 fields\\, UTC) or @hourly\\, @daily\\, @weekly\\, @monthly; a run's date is the day of the interval that just ended. Empty: runs start by hand (sluice jobs run) or as another job's requirement"`
	Params   map[string]string `yaml:"params" json:"params,omitempty" jsonschema:"description=Parameters and their types: date (YYYY-MM-DD)\\, int or string\\, e.g. {date: date}. They are templated into SQL\\, commands and paths as {{.date}}"`
	Requires []Requirement     `yaml:"requires" json:"requires,omitempty" jsonschema:"description=What must exist before a run: {job: NAME\\, params: {date: '{{.date}}'}} (another job's output for those parameters\\, run first when missing) or an external target {table: …}\\, {lake: …}\\, {file: …}"`
	Output   Target            `yaml:"output" json:"output,omitempty" jsonschema:"description=What a run makes; a run whose output exists is never repeated unless forced. {table: NAME\\, partition_by: dt} (a warehouse table partition\\, recorded in sluice_job_outputs with the data)\\, {file: PATH} or {lake: TABLE}; a plain name is a table"`
	SQL      string            `yaml:"sql" json:"sql,omitempty" jsonschema:"description=The body: SQL on the warehouse (DuckDB or PostgreSQL)\\, or the name of a .sql file next to the config. With a table output it is a SELECT whose rows replace the partition"`
	Shell    *ShellBody        `yaml:"shell" json:"shell,omitempty"`
	Compact  *CompactBody      `yaml:"compact" json:"compact,omitempty"`
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
	// Lake is a lake table's day partition: complete when it holds
	// committed files and the day is over.
	Lake string `yaml:"lake" json:"lake,omitempty" jsonschema:"description=A lake table\\, complete for a date when its dt= partition holds committed files and the day has ended (plus lake.compaction.after)"`
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

var paramTypes = []string{"date", "int", "string"}

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
				l.addAt(path+".params."+p, fmt.Sprintf("%s.params.%s has type %q", path, p, j.Params[p]), "date, int or string")
			}
		}
		if j.Schedule != "" && len(j.Params) > 0 && (len(j.Params) != 1 || j.Params["date"] != "date") {
			l.addAt(path+".schedule", fmt.Sprintf("%s: a scheduled job's only parameter is date (its interval's day)", path), "params: {date: date}, or drop the schedule")
		}
		bodies := 0
		for _, on := range []bool{j.SQL != "", j.Shell != nil, j.Compact != nil} {
			if on {
				bodies++
			}
		}
		if bodies != 1 {
			l.addAtKey(path, fmt.Sprintf("job %s needs exactly one body: sql, shell or compact", name), "e.g. sql: daily_revenue.sql")
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
		if j.SQL != "" && j.Output.File != "" {
			l.addAt(path+".output.file", fmt.Sprintf("%s: an sql job writes a table, not a file", path), "output: {table: NAME}, or use a shell job")
		}
		if j.Output.Lake != "" {
			l.addAt(path+".output.lake", fmt.Sprintf("%s: writing a lake table from a job is not available in this version; a lake target can be required", path), "output: {table: NAME} or {file: PATH}")
		}
		l.checkTarget(path+".output", j.Output, false)
		if j.Output.IsZero() && j.Compact == nil {
			l.addAtKey(path, fmt.Sprintf("job %s has no output: without one a run cannot tell whether it is done", name), "output: {table: NAME} (with sql) or {file: PATH}")
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
