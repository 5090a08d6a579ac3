package pipeline

import (
	"encoding/csv"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sluice-data/sluice/config"
)

// lookupStep adds the columns of the CSV row whose Column equals the
// event's Key. The file is read again when its modification time or size
// changes (checked at most every 5 s); a file that fails to load keeps the
// table loaded before.
type lookupStep struct {
	c       config.LookupStep
	rows    map[string]map[string]string
	mod     time.Time
	size    int64
	checked time.Time
}

func newLookup(c config.LookupStep) (*lookupStep, error) {
	if c.Column == "" {
		c.Column = c.Key
	}
	l := &lookupStep{c: c}
	if err := l.load(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *lookupStep) load() error {
	st, err := os.Stat(l.c.File)
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	f, err := os.Open(l.c.File)
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return fmt.Errorf("lookup %s: %w", l.c.File, err)
	}
	if len(recs) == 0 {
		return fmt.Errorf("lookup %s: no header row", l.c.File)
	}
	header := recs[0]
	keyCol := slices.Index(header, l.c.Column)
	if keyCol < 0 {
		return fmt.Errorf("lookup %s: no column %q (the columns are %v)", l.c.File, l.c.Column, header)
	}
	for _, f := range l.c.Fields {
		if !slices.Contains(header, f) {
			return fmt.Errorf("lookup %s: no column %q (the columns are %v)", l.c.File, f, header)
		}
	}
	rows := make(map[string]map[string]string, len(recs)-1)
	for _, rec := range recs[1:] {
		if keyCol >= len(rec) {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			if i == keyCol || i >= len(rec) || (len(l.c.Fields) > 0 && !slices.Contains(l.c.Fields, h)) {
				continue
			}
			row[h] = rec[i]
		}
		rows[rec[keyCol]] = row
	}
	l.rows, l.mod, l.size = rows, st.ModTime(), st.Size()
	return nil
}

func (l *lookupStep) apply(ev Event, now time.Time) (Event, config.Outputs, error) {
	if now.Sub(l.checked) > 5*time.Second {
		l.checked = now
		if st, err := os.Stat(l.c.File); err == nil && (!st.ModTime().Equal(l.mod) || st.Size() != l.size) {
			_ = l.load() // a broken file keeps the old table
		}
	}
	k, ok := ev[l.c.Key]
	if !ok || k == nil {
		return ev, nil, nil
	}
	if row, ok := l.rows[fmt.Sprint(k)]; ok {
		for c, v := range row {
			ev[c] = v
		}
	}
	return ev, nil, nil
}

// throttleStep lets through at most threshold events per key in each
// window of processing time, and drops the rest.
type throttleStep struct {
	c      config.ThrottleStep
	window time.Duration
	start  time.Time
	counts map[string]int
}

func newThrottle(c config.ThrottleStep) *throttleStep {
	w := c.Window.D()
	if w <= 0 {
		w = time.Second
	}
	return &throttleStep{c: c, window: w, counts: map[string]int{}}
}

func (s *throttleStep) apply(ev Event, now time.Time) (Event, config.Outputs, error) {
	if now.Sub(s.start) >= s.window {
		s.start = now.Truncate(s.window)
		clear(s.counts)
	}
	k, err := keyOf(ev, s.c.Key)
	if err != nil {
		return nil, nil, err
	}
	s.counts[k]++
	if s.counts[k] > s.c.Threshold {
		return nil, nil, nil
	}
	return ev, nil, nil
}
