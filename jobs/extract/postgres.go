package extract

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluice-data/sluice"
)

// postgres reads a PostgreSQL table. Numbers, booleans and times come in
// PostgreSQL's binary format and are decoded here; arrays are decoded by
// pgx and kept as JSON; every other type comes as PostgreSQL's text for it
// (numeric, uuid, json, interval, inet, enums, …).
type postgres struct {
	conn *pgx.Conn
	// cols and formats are those of the last Columns call, for Page.
	cols    []pgColumn
	formats pgx.QueryResultFormats
}

type pgColumn struct {
	Column
	oid    uint32
	decode func(buf []byte) (any, error)
}

func openPostgres(ctx context.Context, url string) (*postgres, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "sluice extract"
	// Times in text (time columns, intervals) are read as UTC.
	cfg.RuntimeParams["timezone"] = "UTC"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%d/%s: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return &postgres{conn: conn}, nil
}

func (p *postgres) Close() error { return p.conn.Close(context.Background()) }

func pgQuote(s string) string { return pgx.Identifier{s}.Sanitize() }

func (p *postgres) Columns(ctx context.Context, q Query) ([]Column, error) {
	rows, err := p.conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT 0", selectList(q, pgQuote), quoteTable(q.Table, pgQuote)))
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", q.Table, err)
	}
	fields := rows.FieldDescriptions()
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("table %s: %w", q.Table, err)
	}
	p.cols = p.cols[:0]
	p.formats = p.formats[:0]
	var out []Column
	for _, f := range fields {
		c := p.column(f, q.Decimals)
		p.cols = append(p.cols, c)
		format := int16(pgx.TextFormatCode)
		if c.decode != nil {
			format = pgx.BinaryFormatCode
		}
		p.formats = append(p.formats, format)
		out = append(out, c.Column)
	}
	return out, nil
}

// pgEpoch is where PostgreSQL's binary times and dates count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// column types a result column for the lake and picks how it is read:
// decode for a binary value, nil for PostgreSQL's text of it.
func (p *postgres) column(f pgconn.FieldDescription, decimals string) pgColumn {
	c := pgColumn{Column: Column{Name: f.Name, Type: sluice.TypeVarchar}, oid: f.DataTypeOID}
	typ, known := p.conn.TypeMap().TypeForOID(f.DataTypeOID)
	if known {
		c.Source = typ.Name
	} else {
		c.Source = "oid " + strconv.FormatUint(uint64(f.DataTypeOID), 10)
	}
	switch f.DataTypeOID {
	case pgtype.Int2OID:
		c.Type, c.decode = sluice.TypeBigint, fixed(2, func(b []byte) any { return int64(int16(binary.BigEndian.Uint16(b))) })
	case pgtype.Int4OID:
		c.Type, c.decode = sluice.TypeBigint, fixed(4, func(b []byte) any { return int64(int32(binary.BigEndian.Uint32(b))) })
	case pgtype.Int8OID:
		c.Type, c.decode = sluice.TypeBigint, fixed(8, func(b []byte) any { return int64(binary.BigEndian.Uint64(b)) })
	case pgtype.OIDOID:
		c.Type, c.decode = sluice.TypeBigint, fixed(4, func(b []byte) any { return int64(binary.BigEndian.Uint32(b)) })
	case pgtype.Float4OID:
		c.Type, c.decode = sluice.TypeDouble, fixed(4, func(b []byte) any { return float64(math.Float32frombits(binary.BigEndian.Uint32(b))) })
	case pgtype.Float8OID:
		c.Type, c.decode = sluice.TypeDouble, fixed(8, func(b []byte) any { return math.Float64frombits(binary.BigEndian.Uint64(b)) })
	case pgtype.BoolOID:
		c.Type, c.decode = sluice.TypeBoolean, fixed(1, func(b []byte) any { return b[0] != 0 })
	case pgtype.TimestampOID, pgtype.TimestamptzOID:
		c.Type, c.decode = sluice.TypeTimestamp, fixed(8, func(b []byte) any {
			us := int64(binary.BigEndian.Uint64(b))
			if us == math.MaxInt64 || us == math.MinInt64 {
				return nil // infinity
			}
			return pgEpoch.Add(time.Duration(us) * time.Microsecond)
		})
	case pgtype.DateOID:
		c.Type, c.decode = sluice.TypeTimestamp, fixed(4, func(b []byte) any {
			d := int32(binary.BigEndian.Uint32(b))
			if d == math.MaxInt32 || d == math.MinInt32 {
				return nil
			}
			return pgEpoch.AddDate(0, 0, int(d))
		})
	case pgtype.NumericOID:
		if decimals != "varchar" {
			c.Type = sluice.TypeDouble
		}
	case pgtype.JSONOID, pgtype.JSONBOID:
		c.Type = sluice.TypeJSON
	default:
		if _, isArray := typ.Codec.(*pgtype.ArrayCodec); known && isArray {
			c.Type = sluice.TypeJSON
			m, oid := p.conn.TypeMap(), f.DataTypeOID
			c.decode = func(b []byte) (any, error) {
				v, err := typ.Codec.DecodeValue(m, oid, pgx.BinaryFormatCode, b)
				if err != nil {
					return nil, err
				}
				data, err := json.Marshal(v)
				return json.RawMessage(data), err
			}
		}
	}
	return c
}

func fixed(size int, f func([]byte) any) func([]byte) (any, error) {
	return func(b []byte) (any, error) {
		if len(b) != size {
			return nil, fmt.Errorf("%d bytes where %d were expected", len(b), size)
		}
		return f(b), nil
	}
}

func (p *postgres) Page(ctx context.Context, q Query, after []any, limit int, fn func(row []any) error) error {
	query := pageSQL(q, after != nil, pgQuote, func(i int) string { return "$" + strconv.Itoa(i) })
	// The position's values by column position: $1 for the first order
	// column, and so on.
	args := append([]any{p.formats}, after...)
	args = append(args, limit)
	rows, err := p.conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", q.Table, err)
	}
	defer rows.Close()
	if len(rows.FieldDescriptions()) != len(p.cols) {
		return fmt.Errorf("read %s: the table's columns changed while it was read", q.Table)
	}
	row := make([]any, len(p.cols))
	for rows.Next() {
		raw := rows.RawValues()
		for i, c := range p.cols {
			b := raw[i]
			switch {
			case b == nil:
				row[i] = nil
			case c.decode != nil:
				v, err := c.decode(b)
				if err != nil {
					return fmt.Errorf("read %s: column %s (%s): %w", q.Table, c.Name, c.Source, err)
				}
				row[i] = v
			case c.Type == sluice.TypeDouble: // numeric
				f, err := strconv.ParseFloat(string(b), 64)
				if err != nil {
					row[i] = nil // NaN
					continue
				}
				row[i] = f
			case c.Type == sluice.TypeJSON:
				row[i] = append(json.RawMessage(nil), b...)
			default:
				row[i] = string(b)
			}
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", q.Table, err)
	}
	return nil
}
