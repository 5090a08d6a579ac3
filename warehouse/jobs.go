package warehouse

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Jobs write warehouse table partitions (package jobs): a run's SELECT
// replaces the rows of one partition, and the catalog table
// sluice_job_outputs records the partition, its row count and the run, in
// the same transaction. A partition is complete when the catalog records it
// and the table still holds that many rows for it: a crashed run leaves
// neither, and deleting a day's rows makes that day incomplete again.

// JobCatalog is the catalog table of job outputs.
const JobCatalog = "sluice_job_outputs"

// JobOutput identifies a partition a job writes and the run writing it.
type JobOutput struct {
	Table       string // the output table
	PartitionBy string // its partition column
	Partition   string // the partition's value, as text
	Job         string
	Params      string // the run's parameters, as JSON
	RunID       string
}

// JobWarehouse is where SQL jobs run: DuckDB or PostgreSQL.
type JobWarehouse interface {
	// ReplacePartition runs query (a SELECT) and makes its rows the
	// partition's, recording it in the catalog, in one transaction. The
	// table is created from the query's columns when missing. Every row
	// must belong to the partition. It returns the rows written.
	ReplacePartition(ctx context.Context, out JobOutput, query string) (int64, error)
	// PartitionDone tells whether the catalog records the partition and the
	// table still holds the rows it recorded, and when it was written.
	PartitionDone(ctx context.Context, table, partitionBy, partition string) (time.Time, bool, error)
}

var (
	_ JobWarehouse = (*Warehouse)(nil)
	_ JobWarehouse = (*Postgres)(nil)
)

const duckCatalogDDL = `CREATE TABLE IF NOT EXISTS ` + JobCatalog + ` (
	target VARCHAR, partition VARCHAR, job VARCHAR, params VARCHAR, run_id VARCHAR,
	rows BIGINT, completed_at TIMESTAMP, PRIMARY KEY (target, partition))`

// ReplacePartition implements JobWarehouse on DuckDB.
func (w *Warehouse) ReplacePartition(ctx context.Context, out JobOutput, query string) (int64, error) {
	w.tmu.Lock()
	defer w.tmu.Unlock()
	if w.isView(out.Table) || strings.HasPrefix(out.Table, "sluice_") {
		return 0, fmt.Errorf("%s is a lake table (or sluice's): a job writes a table of its own", out.Table)
	}
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	q := strings.TrimRight(strings.TrimSpace(query), ";")
	t := quoteIdent(out.Table)
	stmts := []string{
		duckCatalogDDL,
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS SELECT * FROM (%s) LIMIT 0", t, q),
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return 0, jobSQLError(out, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE CAST(%s AS VARCHAR) = ?", t, quoteIdent(out.PartitionBy)), out.Partition); err != nil {
		return 0, jobSQLError(out, err)
	}
	res, err := tx.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM (%s)", t, q))
	if err != nil {
		return 0, jobSQLError(out, err)
	}
	n, _ := res.RowsAffected()
	if err := checkPartition(ctx, tx, out, n, "?"); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+JobCatalog+" WHERE target = ? AND partition = ?", out.Table, out.Partition); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+JobCatalog+" VALUES (?, ?, ?, ?, ?, ?, ?)",
		out.Table, out.Partition, out.Job, out.Params, out.RunID, n, time.Now().UTC()); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	w.changed()
	return n, nil
}

// checkPartition makes sure every row written is in the partition: a row
// of another would be replaced by that partition's run, and lost.
func checkPartition(ctx context.Context, tx *sql.Tx, out JobOutput, written int64, mark string) error {
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE CAST(%s AS VARCHAR) = %s", quoteIdent(out.Table), quoteIdent(out.PartitionBy), mark)
	if err := tx.QueryRowContext(ctx, q, out.Partition).Scan(&n); err != nil {
		return jobSQLError(out, err)
	}
	if n != written {
		return fmt.Errorf("job %s wrote %d rows into %s, but only %d have %s = %q: every row must belong to the run's partition (select %s as the partition's value)",
			out.Job, written, out.Table, n, out.PartitionBy, out.Partition, out.PartitionBy)
	}
	return nil
}

func jobSQLError(out JobOutput, err error) error {
	return fmt.Errorf("job %s, table %s: %w", out.Job, out.Table, err)
}

// PartitionDone implements JobWarehouse on DuckDB.
func (w *Warehouse) PartitionDone(ctx context.Context, table, partitionBy, partition string) (time.Time, bool, error) {
	var recorded int64
	var at time.Time
	err := w.db.QueryRowContext(ctx, "SELECT rows, completed_at FROM "+JobCatalog+" WHERE target = ? AND partition = ?", table, partition).Scan(&recorded, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil && strings.Contains(err.Error(), "does not exist"):
		return time.Time{}, false, nil // no job wrote anything yet
	case err != nil:
		return time.Time{}, false, err
	}
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE CAST(%s AS VARCHAR) = ?", quoteIdent(table), quoteIdent(partitionBy))
	if err := w.db.QueryRowContext(ctx, q, partition).Scan(&n); err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return time.Time{}, false, nil // the table was dropped
		}
		return time.Time{}, false, err
	}
	return at, n == recorded, nil
}

const pgCatalogDDL = `CREATE TABLE IF NOT EXISTS ` + JobCatalog + ` (
	target text, partition text, job text, params text, run_id text,
	rows bigint, completed_at timestamp, PRIMARY KEY (target, partition))`

// ReplacePartition implements JobWarehouse on PostgreSQL.
func (p *Postgres) ReplacePartition(ctx context.Context, out JobOutput, query string) (int64, error) {
	if strings.HasPrefix(out.Table, "sluice_") || strings.HasPrefix(out.Table, "_sluice") {
		return 0, fmt.Errorf("%s is sluice's: a job writes a table of its own", out.Table)
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	q := strings.TrimRight(strings.TrimSpace(query), ";")
	t := quoteIdent(out.Table)
	// Creating the catalog and the table at once from two processes would
	// race: one lock per database serialises job writes.
	for _, s := range []string{
		"SELECT pg_advisory_xact_lock(7423001)",
		pgCatalogDDL,
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS SELECT * FROM (%s) AS q WITH NO DATA", t, q),
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return 0, jobSQLError(out, err)
		}
	}
	// The query's columns, by name (PostgreSQL has no INSERT … BY NAME).
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT * FROM (%s) AS q LIMIT 0", q))
	if err != nil {
		return 0, jobSQLError(out, err)
	}
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, quoteIdent(f.Name))
	}
	rows.Close()
	if _, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE CAST(%s AS text) = $1", t, quoteIdent(out.PartitionBy)), out.Partition); err != nil {
		return 0, jobSQLError(out, err)
	}
	tag, err := tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s) AS q", t, strings.Join(cols, ", "), strings.Join(cols, ", "), q))
	if err != nil {
		return 0, jobSQLError(out, err)
	}
	n := tag.RowsAffected()
	var have int64
	if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE CAST(%s AS text) = $1", t, quoteIdent(out.PartitionBy)), out.Partition).Scan(&have); err != nil {
		return 0, jobSQLError(out, err)
	}
	if have != n {
		return 0, fmt.Errorf("job %s wrote %d rows into %s, but only %d have %s = %q: every row must belong to the run's partition (select %s as the partition's value)",
			out.Job, n, out.Table, have, out.PartitionBy, out.Partition, out.PartitionBy)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+JobCatalog+" WHERE target = $1 AND partition = $2", out.Table, out.Partition); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+JobCatalog+" VALUES ($1, $2, $3, $4, $5, $6, $7)",
		out.Table, out.Partition, out.Job, out.Params, out.RunID, n, time.Now().UTC()); err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// PartitionDone implements JobWarehouse on PostgreSQL.
func (p *Postgres) PartitionDone(ctx context.Context, table, partitionBy, partition string) (time.Time, bool, error) {
	var recorded int64
	var at time.Time
	err := p.pool.QueryRow(ctx, "SELECT rows, completed_at FROM "+JobCatalog+" WHERE target = $1 AND partition = $2", table, partition).Scan(&recorded, &at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil && strings.Contains(err.Error(), "does not exist"):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, err
	}
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE CAST(%s AS text) = $1", quoteIdent(table), quoteIdent(partitionBy))
	if err := p.pool.QueryRow(ctx, q, partition).Scan(&n); err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return time.Time{}, false, nil
		}
		return time.Time{}, false, err
	}
	return at, n == recorded, nil
}
