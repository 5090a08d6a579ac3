package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
)

// target is an output with the task's parameters filled in.
type target struct {
	config.Target
	partition string // table, lake: the partition's value
	file      string // file: the path
	// task is the task of the job that writes this lake output (extract,
	// http): complete when its rows are (lakeout.go).
	task *Task
}

// resolve renders a target for a task of job j.
func resolve(j config.Job, tg config.Target, params map[string]string, name string) (target, error) {
	out := target{Target: tg}
	switch {
	case tg.Table != "" || tg.Lake != "":
		tpl := tg.Partition
		if tpl == "" {
			tpl = j.DefaultPartition()
		}
		p, err := render(name+".partition", tpl, params)
		if err != nil {
			return out, err
		}
		out.partition = p
		if tg.Table != "" && out.PartitionBy == "" {
			out.PartitionBy = "dt"
		}
	case tg.File != "":
		f, err := render(name+".file", tg.File, params)
		if err != nil {
			return out, err
		}
		out.file = f
	}
	return out, nil
}

// String names the target with its partition.
func (t target) String() string {
	switch {
	case t.Table != "":
		return fmt.Sprintf("table %s partition %s = %s", t.Table, t.PartitionBy, t.partition)
	case t.Lake != "" && t.task != nil:
		return "lake " + t.Lake
	case t.Lake != "":
		return fmt.Sprintf("lake %s partition dt=%s", t.Lake, t.partition)
	case t.File != "":
		return "file " + t.file
	}
	return "nothing"
}

// exists tells whether a target is complete.
func (s *Scheduler) exists(ctx context.Context, t target) (bool, error) {
	_, ok, err := s.state(ctx, t)
	return ok, err
}

// state tells whether a target is complete and when it was made (zero
// for targets sluice does not make: lake partitions of other tables).
func (s *Scheduler) state(ctx context.Context, t target) (time.Time, bool, error) {
	switch {
	case t.Table != "":
		if s.o.Warehouse == nil {
			return time.Time{}, false, errors.New("no warehouse to hold " + t.String())
		}
		return s.o.Warehouse.PartitionDone(ctx, t.Table, t.PartitionBy, t.partition)
	case strings.HasPrefix(t.file, "s3://"):
		return s.object(ctx, t.file)
	case t.File != "":
		st, err := os.Stat(t.file)
		if errors.Is(err, os.ErrNotExist) {
			return time.Time{}, false, nil
		}
		if err != nil {
			return time.Time{}, false, err
		}
		return st.ModTime(), true, nil
	case t.Lake != "" && t.task != nil:
		return s.lakeWritten(ctx, t)
	case t.Lake != "":
		ok, err := s.lakeDone(ctx, t)
		return time.Time{}, ok, err
	}
	return time.Time{}, false, nil
}

// lakeDone: a lake table's day partition is complete when it holds live
// files and the day ended more than LakeAfter ago (late events have had
// their time to arrive).
func (s *Scheduler) lakeDone(ctx context.Context, t target) (bool, error) {
	day, err := time.Parse(time.DateOnly, t.partition)
	if err != nil {
		return false, fmt.Errorf("lake %s: partition %q is not a date (YYYY-MM-DD)", t.Lake, t.partition)
	}
	if s.now().Before(day.AddDate(0, 0, 1).Add(s.o.LakeAfter)) {
		return false, nil
	}
	if s.o.Lake == nil {
		return false, errors.New("no lake to hold " + t.String())
	}
	files, err := lake.LiveFiles(ctx, s.o.Lake, t.Lake)
	if err != nil {
		return false, err
	}
	prefix := fmt.Sprintf("%s/dt=%s/", t.Lake, t.partition)
	for _, f := range files {
		if strings.HasPrefix(f.Key, prefix) {
			return true, nil
		}
	}
	return false, nil
}

// object tells whether an S3 object exists (s3://bucket/key?endpoint=…,
// with the lake's parameters), and when it was written. The buckets are
// opened once.
func (s *Scheduler) object(ctx context.Context, raw string) (time.Time, bool, error) {
	bucketURL, key, err := splitObjectURL(raw)
	if err != nil {
		return time.Time{}, false, err
	}
	s.mu.Lock()
	b, ok := s.buckets[bucketURL]
	s.mu.Unlock()
	if !ok {
		if b, err = lake.OpenS3(ctx, bucketURL); err != nil {
			return time.Time{}, false, err
		}
		s.mu.Lock()
		if s.buckets == nil {
			s.buckets = map[string]*lake.S3{}
		}
		s.buckets[bucketURL] = b
		s.mu.Unlock()
	}
	return b.Stat(ctx, key)
}

// splitObjectURL splits s3://bucket/key?params into the bucket's URL (with
// the parameters) and the key.
func splitObjectURL(raw string) (string, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", "", fmt.Errorf("%q is not an object URL: s3://bucket/key[?endpoint=…&region=…&use_path_style=true]", raw)
	}
	b := "s3://" + u.Host
	if u.RawQuery != "" {
		b += "?" + u.RawQuery
	}
	return b, strings.TrimPrefix(u.Path, "/"), nil
}

// objectName is an object URL without its parameters, as a command that
// writes it (aws s3 cp) takes it.
func objectName(raw string) string {
	name, _, _ := strings.Cut(raw, "?")
	return name
}
