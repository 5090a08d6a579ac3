package node

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/warehouse"
)

// Tables are the lake's tables: the built-in ones and one per source
// stream (changes of postgres_cdc sources by commit time, log records by
// their time).
func Tables(cfg *config.Config) []lake.Table {
	tables := slices.Clone(lake.BuiltinTables)
	cdc := cfg.CDCStreams()
	for _, s := range cfg.SourceStreams() {
		if slices.Contains(cdc, s) {
			tables = append(tables, lake.Table{Name: s, Stream: s, Fixed: sluice.ChangeColumns, PartitionBy: "commit_time"})
			continue
		}
		tables = append(tables, lake.Table{Name: s, Stream: s, Fixed: sluice.LogColumns, PartitionBy: "timestamp"})
	}
	return append(tables, lakeOutputTables(cfg)...)
}

// lakeOutputTables are the lake tables pipelines write ({lake: NAME}):
// their columns come from the schema record the pipelines keep.
func lakeOutputTables(cfg *config.Config) []lake.Table {
	var tables []lake.Table
	outs := cfg.LakeOutputs()
	for _, name := range slices.Sorted(maps.Keys(outs)) {
		tables = append(tables, lake.Table{Name: name, Stream: name, Dynamic: true, PartitionBy: outs[name]})
	}
	return tables
}

// NewCompactor is the lake compactor the config describes, merging with
// DuckDB; onSwap is told the table whose files were swapped.
func NewCompactor(cfg *config.Config, store lake.Store, tables []lake.Table, onSwap func(table string)) *lake.Compactor {
	cp := cfg.Lake.Compaction
	// The lake's zero values mean "default"; the config's mean zero.
	after, grace := cp.After.D(), cp.Grace.D()
	if after == 0 {
		after = time.Nanosecond
	}
	if grace == 0 {
		grace = -1
	}
	return lake.NewCompactor(lake.CompactorOptions{
		Store: store, Tables: tables, Merge: warehouse.MergeParquet,
		After: after, TargetBytes: int64(cp.TargetBytes), Grace: grace,
		TempDir: filepath.Join(cfg.DataDir, "tmp"), OnSwap: onSwap,
	})
}

// compactLoop compacts closed partitions every lake.compaction.interval.
func (n *Node) compactLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.Lake.Compaction.Interval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := n.Compact(ctx, time.Now()); err != nil && ctx.Err() == nil {
			n.log.Error("lake compaction", "err", err)
		}
	}
}

// Compact runs one compaction pass now: every closed partition with small
// files, and the settling of earlier compactions whose grace has passed.
func (n *Node) Compact(ctx context.Context, now time.Time) (lake.Report, error) {
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	r, err := n.compactor.Compact(ctx, now)
	if r.Partitions > 0 || r.Finished > 0 {
		n.log.Info("lake compaction", "partitions", r.Partitions, "files_merged", r.Inputs, "files_written", r.Outputs, "rows", r.Rows, "settled", r.Finished)
	}
	return r, err
}
