package node

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/warehouse"
)

// pgLoader keeps PostgreSQL's tables in step with the lake: each request
// syncs one table off the caller's goroutine; requests for a table that is
// syncing coalesce into one more sync after it, so a table's syncs never
// overlap and a burst of commits costs at most two.
type pgLoader struct {
	pg     *warehouse.Postgres
	wh     *warehouse.Warehouse
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running map[string]bool // a goroutine syncs the table
	again   map[string]bool // and must sync it once more
	ended   *sync.Cond      // a table's sync ended (running cleared)
	closed  bool
	wg      sync.WaitGroup
}

// retryLoad is how long after a failed load it is tried again.
const retryLoad = 30 * time.Second

func newPGLoader(pg *warehouse.Postgres, wh *warehouse.Warehouse, log *slog.Logger) *pgLoader {
	ctx, cancel := context.WithCancel(context.Background())
	l := &pgLoader{pg: pg, wh: wh, log: log, ctx: ctx, cancel: cancel, running: map[string]bool{}, again: map[string]bool{}}
	l.ended = sync.NewCond(&l.mu)
	return l
}

// sync asks for table to be synced.
func (l *pgLoader) sync(table string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.running[table] {
		l.again[table] = true
		return
	}
	l.running[table] = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			st, err := l.pg.Sync(l.ctx, l.wh, table)
			switch {
			case err != nil && l.ctx.Err() == nil:
				l.log.Error("PostgreSQL warehouse: load", "table", table, "err", err, "retry_in", retryLoad)
				// A table may see no commit for long: try again.
				time.AfterFunc(retryLoad, func() { l.sync(table) })
			case st.Loaded > 0 || st.Deleted > 0:
				l.log.Info("PostgreSQL warehouse: loaded", "table", table, "partitions", st.Loaded, "rows", st.Rows, "deleted_partitions", st.Deleted)
			}
			l.mu.Lock()
			if !l.again[table] || l.closed {
				delete(l.running, table)
				l.ended.Broadcast()
				l.mu.Unlock()
				return
			}
			delete(l.again, table)
			l.mu.Unlock()
		}
	}()
}

// syncNow syncs table on the caller's goroutine, after a sync running
// for it ends, and returns its error: a job that wrote the lake table is
// done only when PostgreSQL has its rows.
func (l *pgLoader) syncNow(ctx context.Context, table string) error {
	l.mu.Lock()
	for l.running[table] && !l.closed {
		l.ended.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return errors.New("PostgreSQL warehouse: closed")
	}
	l.running[table] = true
	l.mu.Unlock()
	st, err := l.pg.Sync(ctx, l.wh, table)
	if err == nil && (st.Loaded > 0 || st.Deleted > 0) {
		l.log.Info("PostgreSQL warehouse: loaded", "table", table, "partitions", st.Loaded, "rows", st.Rows, "deleted_partitions", st.Deleted)
	}
	l.mu.Lock()
	again := l.again[table]
	delete(l.again, table)
	delete(l.running, table)
	l.ended.Broadcast()
	l.mu.Unlock()
	if again {
		l.sync(table)
	}
	return err
}

// syncAll asks for every table to be synced: those of the config, those in
// the lake, and those PostgreSQL holds partitions of (whose files may all
// be gone).
func (l *pgLoader) syncAll(ctx context.Context, cfg *config.Config) {
	var names []string
	for _, t := range Tables(cfg) {
		names = append(names, t.Name)
	}
	inLake, err := l.wh.LakeTables(ctx)
	if err != nil {
		l.log.Error("PostgreSQL warehouse: list lake tables", "err", err)
	}
	loaded, err := l.pg.LoadedTables(ctx)
	if err != nil {
		l.log.Error("PostgreSQL warehouse: list loaded tables", "err", err)
	}
	names = append(append(names, inLake...), loaded...)
	slices.Sort(names)
	for _, t := range slices.Compact(names) {
		l.sync(t)
	}
}

// drain waits until no sync runs, or ctx ends.
func (l *pgLoader) drain(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// close stops the syncs (a load cut short rolls back) and closes
// PostgreSQL.
func (l *pgLoader) close() {
	l.mu.Lock()
	l.closed = true
	l.ended.Broadcast()
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	l.pg.Close()
}

// openPostgres opens PostgreSQL when warehouse.url names it and starts
// loading every table into it.
func (n *Node) openPostgres(ctx context.Context) error {
	if !n.cfg.WarehouseIsPostgres() {
		return nil
	}
	pg, err := warehouse.OpenPostgres(ctx, n.cfg.Warehouse.URL, warehouse.PostgresOptions{})
	if err != nil {
		return err
	}
	n.pgl = newPGLoader(pg, n.wh, n.log)
	n.pgl.syncAll(ctx, n.cfg)
	return nil
}

// engine answers the SQL API: PostgreSQL when it is the warehouse, else
// DuckDB.
func (n *Node) engine() warehouse.Engine {
	if n.pgl != nil {
		return n.pgl.pg
	}
	return n.wh
}

// lakeChanged is told that table's files changed (a commit, a compaction,
// an expiry; "" for every table): PostgreSQL, when it is the warehouse,
// reloads what changed.
func (n *Node) lakeChanged(table string) {
	switch {
	case n.pgl == nil:
	case table == "":
		n.pgl.syncAll(context.Background(), n.cfg)
	default:
		n.pgl.sync(table)
	}
}
