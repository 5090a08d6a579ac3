package lake

import (
	"context"
	"path"
	"regexp"
	"time"
)

var partitionRe = regexp.MustCompile(`^dt=(\d{4}-\d{2}-\d{2})/hr=(\d{2})$`)

// Expired lists the data files of table whose partition (an hour of event
// time) ended longer than keep before now. Files of a partition the table
// may still write to (a late event) are never older than keep, as long as
// keep is longer than events arrive late.
func Expired(ctx context.Context, s Store, table string, keep time.Duration, now time.Time) ([]string, error) {
	files, err := Files(ctx, s, table)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-keep)
	var out []string
	for _, f := range files {
		part := path.Dir(f.Key)[len(table)+1:]
		m := partitionRe.FindStringSubmatch(part)
		if m == nil {
			continue
		}
		start, err := time.Parse("2006-01-02 15", m[1]+" "+m[2])
		if err != nil {
			continue
		}
		if start.Add(time.Hour).Before(cutoff) {
			out = append(out, f.Key)
		}
	}
	return out, nil
}

// Expire deletes the files Expired lists and returns them.
func Expire(ctx context.Context, s Store, table string, keep time.Duration, now time.Time) ([]string, error) {
	keys, err := Expired(ctx, s, table, keep, now)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if err := s.Delete(ctx, k); err != nil {
			return keys[:i], err
		}
	}
	return keys, nil
}
