package pgcdc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// table is a captured table as found in the database.
type table struct {
	name     string // as configured
	oid      uint32
	schema   string
	relname  string
	identity string // relreplident: d(efault), f(ull), i(ndex), n(othing)
	hasPK    bool
}

func (t table) ident() string { return pgx.Identifier{t.schema, t.relname}.Sanitize() }

// Prepare checks that the database can be followed and sets it up: the
// server has wal_level = logical, the role may replicate, every table
// exists and publishes its updates and deletes safely; the publication
// (FOR TABLE the tables) and the slot (pgoutput) are created when missing,
// and tables the publication lacks are added to it. Run calls it again
// before each reconnection; the caller may call it first to fail fast.
func (s *Source) Prepare(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL at %s: %w", s.where(), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var walLevel, db, user string
	var canReplicate bool
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_database(), current_user,
		(SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)`).Scan(&walLevel, &db, &user, &canReplicate)
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w", s.where(), err)
	}
	if err := checkServer(s.where(), walLevel, user, canReplicate); err != nil {
		return err
	}

	tables, err := s.findTables(ctx, conn, db)
	if err != nil {
		return err
	}
	if err := s.ensurePublication(ctx, conn, tables); err != nil {
		return err
	}
	created, err := s.ensureSlot(ctx, conn, db)
	if err != nil {
		return err
	}
	if created {
		if last, err := s.stored(ctx); err == nil && last.commit != 0 {
			s.log.Warn("postgres_cdc: the replication slot was missing and has been created again: changes committed after the last stored one and before now were not captured",
				"slot", s.o.Slot, "last_stored_commit_lsn", last.commit.String())
		}
	}

	// Partitions' changes come under their root when the publication
	// publishes via the root (as sluice creates it); else under their own
	// ids, which are captured too.
	captured := map[uint32]bool{}
	for _, t := range tables {
		rows, err := conn.Query(ctx, `SELECT relid::oid FROM pg_partition_tree($1::oid::regclass)`, t.oid)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", t.name, err)
		}
		oids, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", t.name, err)
		}
		captured[t.oid] = true
		for _, o := range oids {
			captured[o] = true
		}
	}
	s.mu.Lock()
	s.captured = captured
	s.mu.Unlock()
	return nil
}

// checkServer says what keeps a server from being followed.
func checkServer(where, walLevel, user string, canReplicate bool) error {
	if walLevel != "logical" {
		return fmt.Errorf("PostgreSQL at %s has wal_level = %s; change data capture needs wal_level = logical: run ALTER SYSTEM SET wal_level = logical and restart PostgreSQL (docs/operations.md)", where, walLevel)
	}
	if !canReplicate {
		return fmt.Errorf("PostgreSQL role %s may not replicate: run ALTER ROLE %s REPLICATION (as a superuser)", user, pgx.Identifier{user}.Sanitize())
	}
	return nil
}

// findTables resolves the configured tables as PostgreSQL would (the
// URL's search_path applies) and refuses those whose updates and deletes
// a publication would break.
func (s *Source) findTables(ctx context.Context, conn *pgx.Conn, db string) ([]table, error) {
	var tables []table
	for _, name := range s.o.Tables {
		t := table{name: name}
		var kind string
		err := conn.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname, c.relkind::text, c.relreplident::text,
				EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.oid = to_regclass($1)`, name).Scan(&t.oid, &t.schema, &t.relname, &kind, &t.identity, &t.hasPK)
		var pgErr *pgconn.PgError
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var path string
			conn.QueryRow(ctx, "SHOW search_path").Scan(&path)
			return nil, fmt.Errorf("table %s does not exist in database %s (search_path %s): create it, or fix tables: in the source (schema.table for other schemas)", name, db, path)
		case errors.As(err, &pgErr) && pgErr.Code == "42602": // invalid_name
			return nil, fmt.Errorf("%q is not a table name: %s", name, pgErr.Message)
		case err != nil:
			return nil, fmt.Errorf("look up table %s: %w", name, err)
		}
		if kind != "r" && kind != "p" {
			return nil, fmt.Errorf("%s is not a table (relkind %s): only tables can be published", t.ident(), kind)
		}
		switch {
		case t.identity == "n" || (t.identity == "d" && !t.hasPK):
			return nil, fmt.Errorf("table %s has no replica identity (no primary key, REPLICA IDENTITY %s): once published, its UPDATEs and DELETEs would fail; run ALTER TABLE %s REPLICA IDENTITY FULL",
				t.ident(), map[string]string{"n": "NOTHING", "d": "DEFAULT"}[t.identity], t.ident())
		case t.identity != "f":
			s.log.Info("postgres_cdc: the before images of this table's updates and deletes hold only its key; ALTER TABLE … REPLICA IDENTITY FULL makes them whole rows",
				"table", t.schema+"."+t.relname)
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// ensurePublication creates the publication, or adds the tables it lacks.
func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn, tables []table) error {
	pub := pgx.Identifier{s.o.Publication}.Sanitize()
	var all bool
	err := conn.QueryRow(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = $1`, s.o.Publication).Scan(&all)
	if errors.Is(err, pgx.ErrNoRows) {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.ident()
		}
		sql := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish_via_partition_root = true)", pub, strings.Join(names, ", "))
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create publication %s: %w (the role must own the tables and may create in the database; or create it yourself: %s)", s.o.Publication, err, sql)
		}
		s.log.Info("postgres_cdc: created the publication", "publication", s.o.Publication, "tables", names)
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up publication %s: %w", s.o.Publication, err)
	}
	if all {
		return nil
	}
	for _, t := range tables {
		var in bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
			s.o.Publication, t.schema, t.relname).Scan(&in)
		if err != nil {
			return fmt.Errorf("tables of publication %s: %w", s.o.Publication, err)
		}
		if in {
			continue
		}
		sql := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pub, t.ident())
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("publication %s lacks table %s and it could not be added: %w (run %s as the publication's owner)", s.o.Publication, t.ident(), err, sql)
		}
		s.log.Info("postgres_cdc: added a table to the publication", "publication", s.o.Publication, "table", t.ident())
	}
	return nil
}

// ensureSlot creates the slot, or checks that it is one this source can
// follow. The publication must exist first: pgoutput reads it as of each
// change it decodes.
func (s *Source) ensureSlot(ctx context.Context, conn *pgx.Conn, db string) (created bool, err error) {
	var plugin, slotType, slotDB *string
	err = conn.QueryRow(ctx, `SELECT plugin, slot_type, database FROM pg_replication_slots WHERE slot_name = $1`, s.o.Slot).Scan(&plugin, &slotType, &slotDB)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := conn.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, s.o.Slot); err != nil {
			return false, fmt.Errorf("create replication slot %s: %w", s.o.Slot, err)
		}
		s.log.Info("postgres_cdc: created the replication slot; changes are captured from now on", "slot", s.o.Slot)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up replication slot %s: %w", s.o.Slot, err)
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if deref(slotType) != "logical" || deref(plugin) != "pgoutput" || deref(slotDB) != db {
		return false, fmt.Errorf("replication slot %s exists but is not a logical pgoutput slot of database %s (type %s, plugin %s, database %s): choose another slot, or drop it: SELECT pg_drop_replication_slot('%s')",
			s.o.Slot, db, deref(slotType), deref(plugin), deref(slotDB), s.o.Slot)
	}
	return false, nil
}
