// Package jobs runs the batch jobs of the config file (jobs.<name>), as
// Luigi does: a job with parameters is a task; a task is complete when its
// output (a target) exists, and then it never runs again unless forced; a
// task runs once the tasks and targets it requires are complete.
//
//   - task.go: tasks, parameters, templates.
//   - targets.go: when an output exists (a warehouse table partition
//     recorded in sluice_job_outputs, a file, a lake partition, a lake
//     table an extract wrote).
//   - runs.go: the record of every run, in the bus's state bucket.
//   - scheduler.go: the DAG of requested tasks, run in parallel within
//     limits, retried with backoff, leases so that two processes never run
//     one task at once, a job disabled after repeated failures, the clock.
//   - bodies.go: what a run does: sql, shell, load, compact.
//   - dbextract.go, httpextract.go: extract and http, a database table or
//     a JSON API into a lake table (readers in package jobs/extract), and
//     lakeout.go: how such a table is written exactly once and when it is
//     complete.
package jobs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/sluice-data/sluice/config"
)

// Task is a job with its parameters.
type Task struct {
	Job    string            `json:"job"`
	Params map[string]string `json:"params,omitempty"`
}

// String is the task as people read it: daily_revenue(date=2026-11-25).
func (t Task) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t.Params)) {
		parts = append(parts, k+"="+t.Params[k])
	}
	return t.Job + "(" + strings.Join(parts, ", ") + ")"
}

// id is the task's name in the state bucket's keys (which take only
// letters, digits, -, _ and =).
func (t Task) id() string {
	sum := sha256.Sum256([]byte(t.String()))
	return t.Job + "-" + hex.EncodeToString(sum[:10])
}

// paramsJSON is the parameters as JSON, for the catalog.
func (t Task) paramsJSON() string {
	b, _ := json.Marshal(t.Params)
	return string(b)
}

// Normalize checks a task's parameters against its job's: every parameter
// given, of its type (a date as YYYY-MM-DD), and no other.
func Normalize(jobs map[string]config.Job, t Task) (Task, error) {
	j, ok := jobs[t.Job]
	if !ok {
		return t, fmt.Errorf("no job %q (the jobs are %s)", t.Job, strings.Join(slices.Sorted(maps.Keys(jobs)), ", "))
	}
	out := Task{Job: t.Job, Params: map[string]string{}}
	for k, v := range t.Params {
		typ, ok := j.Params[k]
		if !ok {
			return t, fmt.Errorf("job %s has no parameter %q (its parameters: %s)", t.Job, k, strings.Join(slices.Sorted(maps.Keys(j.Params)), ", "))
		}
		switch typ {
		case "date":
			d, err := time.Parse(time.DateOnly, v)
			if err != nil {
				return t, fmt.Errorf("job %s: parameter %s is %q, not a date (YYYY-MM-DD)", t.Job, k, v)
			}
			v = d.Format(time.DateOnly)
		case "time":
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return t, fmt.Errorf("job %s: parameter %s is %q, not a time (RFC 3339, e.g. 2026-11-25T10:00:00Z)", t.Job, k, v)
			}
			v = at.UTC().Format(time.RFC3339)
		case "int":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return t, fmt.Errorf("job %s: parameter %s is %q, not a whole number", t.Job, k, v)
			}
			v = strconv.FormatInt(n, 10)
		}
		out.Params[k] = v
	}
	for _, k := range slices.Sorted(maps.Keys(j.Params)) {
		if _, ok := out.Params[k]; !ok {
			return t, fmt.Errorf("job %s needs parameter %s (a %s)", t.Job, k, j.Params[k])
		}
	}
	return out, nil
}

// templates are the parsed templates of jobs, by name and text: a DAG
// renders the same few for every task.
var templates sync.Map

// render fills a template of a job with a task's parameters.
func render(name, text string, params map[string]string) (string, error) {
	key := name + "\x00" + text
	v, ok := templates.Load(key)
	if !ok {
		tpl, err := config.ParseJobTemplate(name, text)
		if err != nil {
			return "", err
		}
		v, _ = templates.LoadOrStore(key, tpl)
	}
	tpl := v.(*template.Template)
	var b bytes.Buffer
	if err := tpl.Execute(&b, params); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return b.String(), nil
}

// requirement is what a task needs first: another task, or a target.
type requirement struct {
	task   *Task
	target *config.Target
}

// requires lists what a task needs first, with the parameters of required
// jobs rendered from the task's.
func requires(jobs map[string]config.Job, t Task) ([]requirement, error) {
	j := jobs[t.Job]
	var out []requirement
	for i, r := range j.Requires {
		if r.Job == "" {
			tg := r.Target()
			out = append(out, requirement{target: &tg})
			continue
		}
		dep := Task{Job: r.Job, Params: map[string]string{}}
		for p := range jobs[r.Job].Params {
			tpl, ok := r.Params[p]
			if !ok {
				dep.Params[p] = t.Params[p]
				continue
			}
			v, err := render(fmt.Sprintf("jobs.%s.requires[%d].params.%s", t.Job, i, p), tpl, t.Params)
			if err != nil {
				return nil, err
			}
			dep.Params[p] = v
		}
		dep, err := Normalize(jobs, dep)
		if err != nil {
			return nil, fmt.Errorf("%s requires %w", t, err)
		}
		out = append(out, requirement{task: &dep})
	}
	return out, nil
}

// Dates lists the days from..to, both included.
func Dates(from, to string) ([]string, error) {
	f, err := time.Parse(time.DateOnly, from)
	if err != nil {
		return nil, fmt.Errorf("from %q is not a date (YYYY-MM-DD)", from)
	}
	l, err := time.Parse(time.DateOnly, to)
	if err != nil {
		return nil, fmt.Errorf("to %q is not a date (YYYY-MM-DD)", to)
	}
	if l.Before(f) {
		return nil, fmt.Errorf("to %s is before from %s", to, from)
	}
	if l.Sub(f) > 100*365*24*time.Hour {
		return nil, fmt.Errorf("%s to %s is more than a century", from, to)
	}
	var out []string
	for d := f; !d.After(l); d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(time.DateOnly))
	}
	return out, nil
}
