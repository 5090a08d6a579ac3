package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/warehouse"
)

// startJobs starts the job scheduler: its clock and the watch for runs of
// dead processes. Runs started through the API use it too.
func (n *Node) startJobs() error {
	member, err := memberName(n.cfg.DataDir)
	if err != nil {
		return err
	}
	var wh warehouse.JobWarehouse = n.wh
	if n.pgl != nil {
		wh = n.pgl.pg
	}
	n.sched = jobs.New(jobs.Options{
		Jobs: n.cfg.Jobs, Bus: n.bus, Warehouse: wh, Lake: n.store, LakeAfter: n.cfg.Lake.Compaction.After.D(),
		Compact: n.compactTables, Refresh: n.refreshLakeTable, Load: n.loadTable, RebuildRollup: n.rebuildRollupJob, Parallel: n.cfg.Scheduler.Parallel, Resources: n.cfg.Scheduler.Resources,
		Member: member, LeaseTTL: n.jobLeaseTTL, Logger: n.log,
	})
	ctx, cancel := context.WithCancel(context.Background())
	n.jcancel = cancel
	n.jwg.Go(func() { n.sched.Loop(ctx) })
	if len(n.cfg.Jobs) > 0 {
		n.log.Info("jobs scheduled", "jobs", len(n.cfg.Jobs))
	}
	return nil
}

// stopJobs stops the clock and cancels the runs of this process (recorded
// as cancelled; their leases handed back).
func (n *Node) stopJobs() {
	if n.sched == nil {
		return
	}
	n.jcancel()
	n.jwg.Wait()
	n.sched.Close()
}

// Scheduler is the node's job scheduler.
func (n *Node) Scheduler() *jobs.Scheduler { return n.sched }

// compactTables is a compact job's body: a compaction pass over some lake
// tables (all when none are named).
func (n *Node) compactTables(ctx context.Context, names []string) (string, error) {
	if len(names) == 0 {
		r, err := n.Compact(ctx, time.Now())
		return fmt.Sprintf("%+v", r), err
	}
	var tables []lake.Table
	for _, t := range Tables(n.cfg) {
		if slices.Contains(names, t.Name) {
			tables = append(tables, t)
		}
	}
	if len(tables) != len(names) {
		return "", fmt.Errorf("compact: some of %v are not lake tables", names)
	}
	n.compactMu.Lock()
	defer n.compactMu.Unlock()
	c := NewCompactor(n.cfg, n.store, tables, func(table string) {
		if err := n.wh.Refresh(context.Background(), table); err != nil {
			n.log.Error("warehouse refresh after compaction", "table", table, "err", err)
		}
		n.lakeChanged(table)
	})
	r, err := c.Compact(ctx, time.Now())
	return fmt.Sprintf("%+v", r), err
}

// refreshLakeTable makes the committed files of a lake table visible to
// SQL now (DuckDB's view; with PostgreSQL as the warehouse, its copy),
// rather than when the archiver's commit gets round to it: an extract job
// that wrote the table is done only then, and the jobs after it query it.
func (n *Node) refreshLakeTable(ctx context.Context, table string) error {
	if err := n.wh.Refresh(ctx, table); err != nil {
		return err
	}
	if n.pgl != nil {
		return n.pgl.syncNow(ctx, table)
	}
	return nil
}

// loadTable is a load job's body: the lake table into the PostgreSQL
// database at url, by COPY, as the PostgreSQL warehouse loads the lake
// (warehouse.Postgres.Sync): the hours whose files changed since the last
// load are loaded again, the hours whose files are gone are deleted.
func (n *Node) loadTable(ctx context.Context, job, table, url string) (string, error) {
	if err := n.wh.Refresh(ctx, table); err != nil {
		return "", err
	}
	pg, err := warehouse.OpenPostgres(ctx, url, warehouse.PostgresOptions{Setting: "jobs." + job + ".load.to"})
	if err != nil {
		return "", err
	}
	defer pg.Close()
	st, err := pg.Sync(ctx, n.wh, table)
	return fmt.Sprintf("%d partitions (hours) loaded, %d rows; %d deleted", st.Loaded, st.Rows, st.Deleted), err
}

// rebuildRollupJob is the body of rollup jobs: a rebuild, reported as JSON.
func (n *Node) rebuildRollupJob(ctx context.Context, name string, from, to time.Time) (string, error) {
	rep, err := n.RebuildRollup(ctx, name, from, to)
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(rep)
	return string(b), nil
}
