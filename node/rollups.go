package node

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/warehouse"
)

// rollups are the running rollups and what their SQL tables wait for.
type rollups struct {
	runners map[string]*rollup.Runner
	mu      sync.Mutex
	dirty   map[string]map[time.Time]bool // rollup -> buckets changed since the last refresh
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startRollups starts the configured rollups and the refresh of their
// tables in the warehouse (every 500 ms, the buckets that changed).
func (n *Node) startRollups() error {
	r := &rollups{runners: map[string]*rollup.Runner{}, dirty: map[string]map[time.Time]bool{}}
	n.roll = r
	for _, name := range slices.Sorted(maps.Keys(n.cfg.Rollups)) {
		run, err := rollup.New(rollup.Options{
			Name: name, Config: n.cfg.Rollups[name], Bus: n.bus, Dir: filepath.Join(n.cfg.DataDir, "rollups"), Logger: n.log,
			OnChange: func(buckets []time.Time) {
				r.mu.Lock()
				defer r.mu.Unlock()
				d := r.dirty[name]
				if d == nil {
					d = map[time.Time]bool{}
					r.dirty[name] = d
				}
				for _, b := range buckets {
					d[b] = true
				}
			},
		})
		if err != nil {
			return err
		}
		r.runners[name] = run
	}
	if len(r.runners) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(n.cfg.DataDir, "rollups"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, run := range r.runners {
		r.wg.Go(func() {
			if err := run.Run(ctx); err != nil {
				n.errs <- err
			}
		})
	}
	r.wg.Go(func() { n.refreshRollups(ctx) })
	return nil
}

// refreshRollups writes the changed buckets of each rollup into its table
// (in DuckDB, and in PostgreSQL when it is the warehouse) every 500 ms, and
// once more when ctx ends.
func (n *Node) refreshRollups(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		done := ctx.Err() != nil
		r := n.roll
		for _, name := range slices.Sorted(maps.Keys(r.runners)) {
			run := r.runners[name]
			r.mu.Lock()
			buckets := slices.SortedFunc(maps.Keys(r.dirty[name]), func(a, b time.Time) int { return a.Compare(b) })
			r.dirty[name] = map[time.Time]bool{}
			r.mu.Unlock()
			if len(buckets) == 0 {
				continue
			}
			var cols []warehouse.TableColumn
			for _, c := range run.Table.Columns() {
				cols = append(cols, warehouse.TableColumn{Name: c.Name, Type: c.Type})
			}
			rows := run.Table.BucketRows(buckets)
			err := n.wh.ReplaceBuckets(context.WithoutCancel(ctx), name, cols, buckets, rows)
			if err == nil && n.pgl != nil {
				// The SQL API answers from PostgreSQL: the table is there too.
				if err = n.pgl.pg.ReplaceBuckets(context.WithoutCancel(ctx), name, cols, buckets, rows); err != nil {
					err = fmt.Errorf("PostgreSQL warehouse: %w", err)
				}
			}
			if err != nil {
				n.log.Error("rollup table refresh", "rollup", name, "err", err)
				// Try these buckets again next time.
				r.mu.Lock()
				for _, b := range buckets {
					r.dirty[name][b] = true
				}
				r.mu.Unlock()
			}
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// stopRollups stops counting (each rollup saves its snapshot).
func (n *Node) stopRollups() {
	if n.roll == nil || n.roll.cancel == nil {
		return
	}
	n.roll.cancel()
	n.roll.wg.Wait()
	n.roll.cancel = nil
}

// Rollup is a running rollup's table, for queries.
func (n *Node) Rollup(name string) (*rollup.Table, bool) {
	if n.roll == nil {
		return nil, false
	}
	r, ok := n.roll.runners[name]
	if !ok {
		return nil, false
	}
	return r.Table, true
}

// RollupNames are the running rollups.
func (n *Node) RollupNames() []string {
	if n.roll == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(n.roll.runners))
}

// RebuildRollup counts [from, to) of a rollup again from the lake (its
// source table) and the stream after the lake's committed position.
func (n *Node) RebuildRollup(ctx context.Context, name string, from, to time.Time) (rollup.RebuildReport, error) {
	if n.roll == nil || n.roll.runners[name] == nil {
		return rollup.RebuildReport{}, fmt.Errorf("no rollup %q", name)
	}
	return n.roll.runners[name].Rebuild(ctx, from, to, n.lakeSource(n.cfg.Rollups[name].From))
}

// lakeSource reads a lake table's rows of [from, to): those of the files
// committed up to the table's committed position, in the hour partitions
// of the interval.
func (n *Node) lakeSource(table string) rollup.LakeSource {
	return func(ctx context.Context, from, to time.Time, visit func(ev map[string]any) error) (uint64, error) {
		seq, err := lake.CommittedSeq(ctx, n.store, table)
		if err != nil {
			return 0, err
		}
		files, err := lake.LiveFiles(ctx, n.store, table)
		if err != nil {
			return 0, err
		}
		var keys []string
		for _, f := range files {
			if f.Last > seq {
				continue
			}
			var day string
			var hour int
			rest := strings.TrimPrefix(f.Key, table+"/")
			if _, err := fmt.Sscanf(rest, "dt=%10s/hr=%d/", &day, &hour); err != nil {
				continue
			}
			d, err := time.Parse(time.DateOnly, day)
			if err != nil {
				continue
			}
			start := d.Add(time.Duration(hour) * time.Hour)
			if start.Before(to) && start.Add(time.Hour).After(from) {
				keys = append(keys, f.Key)
			}
		}
		if len(keys) == 0 {
			return seq, nil
		}
		cols, err := n.wh.FileColumns(ctx, keys)
		if err != nil {
			return 0, err
		}
		return seq, n.wh.ReadFiles(ctx, keys, nil, func(row []any) error {
			ev := make(map[string]any, len(cols))
			for i, c := range cols {
				ev[c.Name] = row[i]
			}
			return visit(ev)
		})
	}
}
