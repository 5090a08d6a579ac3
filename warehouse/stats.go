package warehouse

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice/lake"
)

// TableStats are a lake table's statistics, as the view sluice_tables shows
// them: what its live files hold, from their Parquet footers (read once per
// file: files never change).
type TableStats struct {
	Table      string    `json:"table"`
	Files      int       `json:"files"`
	Rows       int64     `json:"rows"`
	Bytes      int64     `json:"bytes"`
	Partitions int       `json:"partitions"`
	FirstHour  time.Time `json:"first_hour,omitzero"` // the oldest partition's hour
	LastHour   time.Time `json:"last_hour,omitzero"`  // the newest partition's hour
	Refreshed  time.Time `json:"refreshed_at"`
}

type fileStats struct{ rows, bytes int64 }

// updateStats recomputes table's statistics from its live files and
// rewrites the sluice_tables view. Called with w.mu held.
func (w *Warehouse) updateStats(ctx context.Context, table string, files []lake.DataFile) error {
	var fresh []string
	for _, f := range files {
		if _, ok := w.fileStats[f.Key]; !ok {
			fresh = append(fresh, f.Key)
		}
	}
	if len(fresh) > 0 {
		if err := w.readFooters(ctx, fresh); err != nil {
			return err
		}
	}
	st := TableStats{Table: table, Files: len(files), Refreshed: time.Now().UTC()}
	parts := map[string]bool{}
	for _, f := range files {
		fs := w.fileStats[f.Key]
		st.Rows += fs.rows
		st.Bytes += fs.bytes
		p := strings.TrimPrefix(path.Dir(f.Key), table+"/")
		parts[p] = true
		if end, ok := lake.PartitionEnd(p); ok {
			h := end.Add(-time.Hour)
			if st.FirstHour.IsZero() || h.Before(st.FirstHour) {
				st.FirstHour = h
			}
			if h.After(st.LastHour) {
				st.LastHour = h
			}
		}
	}
	st.Partitions = len(parts)
	if len(files) == 0 {
		delete(w.stats, table)
	} else {
		w.stats[table] = st
	}
	// Footers of files no view reads any more are forgotten.
	if len(w.fileStats) > 2*len(files)+1000 {
		live := map[string]bool{}
		for _, f := range files {
			live[f.Key] = true
		}
		for k := range w.fileStats {
			if strings.HasPrefix(k, table+"/") && !live[k] {
				delete(w.fileStats, k)
			}
		}
	}
	return w.writeStatsView(ctx)
}

// readFooters reads the row counts of the files' footers through DuckDB
// (one query for all), and their sizes.
func (w *Warehouse) readFooters(ctx context.Context, keys []string) error {
	paths := make([]string, len(keys))
	byPath := make(map[string]string, len(keys))
	for i, k := range keys {
		p := w.localPath(k)
		paths[i] = quoteString(p)
		byPath[p] = k
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("warehouse: stats of %s: %w", k, err)
		}
		w.fileStats[k] = fileStats{bytes: st.Size()}
	}
	rows, err := w.db.QueryContext(ctx, fmt.Sprintf("SELECT file_name, sum(num_rows) FROM parquet_file_metadata([%s]) GROUP BY file_name", strings.Join(paths, ", ")))
	if err != nil {
		return fmt.Errorf("warehouse: footers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		if k, ok := byPath[name]; ok {
			fs := w.fileStats[k]
			fs.rows = n
			w.fileStats[k] = fs
		}
	}
	return rows.Err()
}

// writeStatsView rewrites sluice_tables from w.stats.
func (w *Warehouse) writeStatsView(ctx context.Context) error {
	cols := "table_name, files, rows, bytes, partitions, first_hour, last_hour, refreshed_at"
	body := "SELECT CAST(NULL AS VARCHAR) AS table_name, CAST(NULL AS BIGINT) AS files, CAST(NULL AS BIGINT) AS rows, CAST(NULL AS BIGINT) AS bytes, " +
		"CAST(NULL AS BIGINT) AS partitions, CAST(NULL AS TIMESTAMP) AS first_hour, CAST(NULL AS TIMESTAMP) AS last_hour, CAST(NULL AS TIMESTAMP) AS refreshed_at WHERE false"
	if len(w.stats) > 0 {
		var vals []string
		for _, t := range slices.Sorted(maps.Keys(w.stats)) {
			s := w.stats[t]
			vals = append(vals, fmt.Sprintf("(%s, %d, %d, %d, %d, TIMESTAMP %s, TIMESTAMP %s, TIMESTAMP %s)",
				quoteString(t), s.Files, s.Rows, s.Bytes, s.Partitions, tsLiteral(s.FirstHour), tsLiteral(s.LastHour), tsLiteral(s.Refreshed)))
		}
		body = fmt.Sprintf("SELECT * FROM (VALUES %s) AS t(%s)", strings.Join(vals, ", "), cols)
	}
	if body == w.statsView {
		return nil
	}
	defer w.changed()
	if _, err := w.db.ExecContext(ctx, "CREATE OR REPLACE VIEW sluice_tables AS "+body); err != nil {
		return fmt.Errorf("warehouse: view sluice_tables: %w", err)
	}
	w.statsView = body
	return nil
}

func tsLiteral(t time.Time) string { return quoteString(t.UTC().Format("2006-01-02 15:04:05.000000")) }

// Stats are the statistics of every lake table that has files.
func (w *Warehouse) Stats() []TableStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]TableStats, 0, len(w.stats))
	for _, t := range slices.Sorted(maps.Keys(w.stats)) {
		out = append(out, w.stats[t])
	}
	return out
}
