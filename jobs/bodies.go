package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/warehouse"
)

// body runs one attempt of a task; log gets what it prints. extract and
// http are in dbextract.go and httpextract.go.
func (s *Scheduler) body(ctx context.Context, run *Run, j config.Job, out target, log io.Writer) error {
	t := run.Task()
	switch {
	case j.SQL != "":
		q, err := render("jobs."+t.Job+".sql", j.SQL, t.Params)
		if err != nil {
			return err
		}
		if s.o.Warehouse == nil {
			return errors.New("no warehouse to run SQL on")
		}
		fmt.Fprintf(log, "SQL into %s:\n%s\n", out, strings.TrimSpace(q))
		start := time.Now()
		n, err := s.o.Warehouse.ReplacePartition(ctx, warehouse.JobOutput{
			Table: out.Table, PartitionBy: out.PartitionBy, Partition: out.partition,
			Job: t.Job, Params: t.paramsJSON(), RunID: run.ID,
		}, q)
		if err != nil {
			return err
		}
		fmt.Fprintf(log, "%d rows in %s\n", n, time.Since(start).Round(time.Millisecond))
		return nil
	case j.Shell != nil:
		return s.shell(ctx, run, j, out, log)
	case j.Extract != nil:
		return s.extractDB(ctx, run, j, out, log)
	case j.HTTP != nil:
		return s.extractHTTP(ctx, run, j, out, log)
	case j.Load != nil:
		if s.o.Load == nil {
			return errors.New("no lake to load from")
		}
		fmt.Fprintf(log, "load lake table %s into %s\n", j.Load.From, redact(j.Load.To))
		report, err := s.o.Load(ctx, t.Job, j.Load.From, j.Load.To)
		fmt.Fprintln(log, report)
		return err
	case j.Rollup != nil:
		if s.o.RebuildRollup == nil {
			return errors.New("no rollups run here")
		}
		var bounds [2]time.Time
		for i, tmpl := range []string{j.Rollup.From, j.Rollup.To} {
			v, err := render("jobs."+t.Job+".rollup", tmpl, t.Params)
			if err != nil {
				return err
			}
			if bounds[i], err = parseInstant(strings.TrimSpace(v)); err != nil {
				return fmt.Errorf("jobs.%s.rollup: %w", t.Job, err)
			}
		}
		fmt.Fprintf(log, "rebuild rollup %s for [%s, %s) from the lake\n", j.Rollup.Name, bounds[0].Format(time.RFC3339), bounds[1].Format(time.RFC3339))
		report, err := s.o.RebuildRollup(ctx, j.Rollup.Name, bounds[0], bounds[1])
		fmt.Fprintln(log, report)
		return err
	case j.Compact != nil:
		if s.o.Compact == nil {
			return errors.New("no lake to compact")
		}
		report, err := s.o.Compact(ctx, j.Compact.Tables)
		fmt.Fprintln(log, report)
		return err
	}
	return fmt.Errorf("job %s has no body", t.Job)
}

// shell runs a command with sh -c. A file output is written through
// $SLUICE_OUTPUT, a temporary name renamed into place when the command
// succeeds, so that a crashed run never leaves a file that counts as done.
func (s *Scheduler) shell(ctx context.Context, run *Run, j config.Job, out target, log io.Writer) error {
	t := run.Task()
	command, err := render("jobs."+t.Job+".shell.command", j.Shell.Command, t.Params)
	if err != nil {
		return err
	}
	env := os.Environ()
	for _, k := range slices.Sorted(mapsKeys(t.Params)) {
		env = append(env, "SLUICE_PARAM_"+strings.ToUpper(k)+"="+t.Params[k])
	}
	env = append(env, "SLUICE_JOB="+t.Job, "SLUICE_RUN_ID="+run.ID)
	var tmp string
	switch {
	case strings.HasPrefix(out.file, "s3://"):
		// An object appears whole when its upload ends: the command
		// writes it itself (aws s3 cp …).
		env = append(env, "SLUICE_OUTPUT="+objectName(out.file))
	case out.file != "":
		if err := os.MkdirAll(filepath.Dir(out.file), 0o755); err != nil {
			return err
		}
		// A name per attempt: the command of an attempt whose process died
		// may still be writing to its own. Those of earlier attempts go.
		n := len(run.Attempts)
		for i := 1; i < n; i++ {
			os.Remove(fmt.Sprintf("%s.tmp-%s-%d", out.file, run.ID, i))
		}
		tmp = fmt.Sprintf("%s.tmp-%s-%d", out.file, run.ID, n)
		env = append(env, "SLUICE_OUTPUT="+tmp)
		defer os.Remove(tmp)
	}
	for _, k := range slices.Sorted(mapsKeys(j.Shell.Env)) {
		v, err := render("jobs."+t.Job+".shell.env."+k, j.Shell.Env[k], t.Params)
		if err != nil {
			return err
		}
		env = append(env, k+"="+v)
	}
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = j.Shell.Dir, env, log, log
	cmd.SysProcAttr = shellAttr()
	// Where the shell dies with sluice (shellAttr), the signal follows the
	// thread that started it: that thread is kept until the command ends.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fmt.Fprintf(log, "$ %s\n", command)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			err = <-done
		}
		return fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("command failed with exit code %d", ee.ExitCode())
		}
		return err
	}
	if tmp != "" {
		if _, err := os.Stat(tmp); err == nil {
			if err := os.Rename(tmp, out.file); err != nil {
				return err
			}
			syncDir(filepath.Dir(out.file))
		} else if _, err := os.Stat(out.file); err != nil {
			return fmt.Errorf("the command succeeded but wrote neither $SLUICE_OUTPUT (%s) nor %s", tmp, out.file)
		}
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// redact hides the password of a URL, for logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	if _, ok := p.User.Password(); ok {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	return p.String()
}

// parseInstant reads a time: RFC 3339, or YYYY-MM-DD (midnight UTC).
func parseInstant(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}
