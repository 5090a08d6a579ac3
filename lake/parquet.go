package lake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// parquetNode is the Parquet type of a lake column. Every column is optional:
// a row may not have a value for it.
func parquetNode(t sluice.ColumnType) parquet.Node {
	var n parquet.Node
	switch t {
	case sluice.TypeBigint:
		n = parquet.Int(64)
	case sluice.TypeDouble:
		n = parquet.Leaf(parquet.DoubleType)
	case sluice.TypeBoolean:
		n = parquet.Leaf(parquet.BooleanType)
	case sluice.TypeTimestamp:
		// Not adjusted to UTC: engines read it as a plain TIMESTAMP whose
		// values are UTC, the warehouse convention.
		n = parquet.TimestampAdjusted(parquet.Microsecond, false)
	case sluice.TypeJSON:
		n = parquet.JSON()
	default:
		n = parquet.String()
	}
	return parquet.Optional(n)
}

// fastSnappy is Snappy made by s2's fast encoder rather than by the
// stronger one parquet-go's codec uses: files are about 4% larger, pages are
// compressed in half the time, and compaction rewrites the files of closed
// partitions anyway. Every Snappy decoder reads it.
type fastSnappy struct{ snappy.Codec }

func (*fastSnappy) Encode(dst, src []byte) ([]byte, error) { return s2.EncodeSnappy(dst, src), nil }

// encodeParquet writes NDJSON rows as one Parquet file with the given
// columns. A value that does not fit its column's type is an error: the
// stage before the lake guarantees types, so a mismatch is a bug to surface,
// not a row to bend. A field without a column is left out, unless strict:
// then it is a *moreColumnsError (the columns were guessed from some rows).
func encodeParquet(table string, cols []sluice.Column, lines [][]byte, strict bool) ([]byte, error) {
	group := parquet.Group{}
	for _, c := range cols {
		group[c.Name] = parquetNode(c.Type)
	}
	schema := parquet.NewSchema(table, group)
	// Key k of a row is column k; keys numbered after the columns are
	// fields without one.
	var keys jsonseq.Keys
	// parquet.Group orders columns by name; find each one's leaf index.
	index := make([]int, len(cols))
	for i, c := range cols {
		if keys.Add(c.Name) != i {
			return nil, fmt.Errorf("column %q twice", c.Name)
		}
		leaf, ok := schema.Lookup(c.Name)
		if !ok {
			return nil, fmt.Errorf("parquet schema lost column %q", c.Name)
		}
		index[i] = leaf.ColumnIndex
	}
	var buf bytes.Buffer
	// Pages are compressed by Snappy's fast encoder, and carry no
	// statistics of their own: the same bounds are in the column index and
	// in the column chunks, which is where engines read them.
	w := parquet.NewWriter(&buf, schema, parquet.Compression(&fastSnappy{}), parquet.DataPageStatistics(false))
	// Values are gathered by column, a chunk of rows at a time, and handed
	// to each column's writer (cheaper than assembling rows): every value
	// starts as the column's null and is replaced when the row has one. A
	// chunk's values and rows stay in the CPU's cache until written.
	const chunk = 256
	writers := w.ColumnWriters()
	nulls := make([]parquet.Value, len(cols))
	values := make([][]parquet.Value, len(cols))
	convert := make([]func([]byte) (parquet.Value, error), len(cols))
	for i, c := range cols {
		nulls[i] = parquet.NullValue().Level(0, 0, index[i])
		values[i] = make([]parquet.Value, chunk)
		convert[i] = toValue(c.Type)
	}
	for from := 0; from < len(lines); from += chunk {
		rows := lines[from:min(from+chunk, len(lines))]
		for i := range cols {
			vs := values[i][:len(rows)]
			for r := range vs {
				vs[r] = nulls[i]
			}
		}
		for r, line := range rows {
			err := keys.Fields(line, func(k int, raw []byte) error {
				if k >= len(cols) {
					if strict {
						return &moreColumnsError{row: from + r}
					}
					// A fixed table's messages may carry fields for other
					// readers of the stream (a bad row's headers, for replay).
					return nil
				}
				if raw[0] == 'n' { // null
					return nil
				}
				v, err := convert[k](raw)
				if err != nil {
					return fmt.Errorf("column %s: %w", cols[k].Name, err)
				}
				values[k][r] = v.Level(0, 1, index[k])
				return nil
			})
			if err != nil {
				if more := (*moreColumnsError)(nil); errors.As(err, &more) {
					return nil, more
				}
				return nil, fmt.Errorf("row %d: %w", from+r, err)
			}
		}
		for i := range cols {
			if _, err := writers[index[i]].WriteRowValues(values[i][:len(rows)]); err != nil {
				return nil, fmt.Errorf("column %s: %w", cols[i].Name, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// moreColumnsError says that a row has a field that is not a column.
type moreColumnsError struct {
	row int // the first such row
}

func (e *moreColumnsError) Error() string {
	return fmt.Sprintf("row %d has a field that is not a column", e.row)
}

// toValue returns the function that converts a JSON value other than null
// to the Parquet value of a column type (chosen once per column of a file).
func toValue(t sluice.ColumnType) func(raw []byte) (parquet.Value, error) {
	switch t {
	case sluice.TypeBigint:
		return bigintValue
	case sluice.TypeDouble:
		return doubleValue
	case sluice.TypeBoolean:
		return booleanValue
	case sluice.TypeTimestamp:
		return timestampValue
	case sluice.TypeJSON:
		return jsonValue
	default:
		return stringValue
	}
}

func bigintValue(raw []byte) (parquet.Value, error) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return parquet.Value{}, fmt.Errorf("%s is not a BIGINT", raw)
	}
	return parquet.Int64Value(n), nil
}

func doubleValue(raw []byte) (parquet.Value, error) {
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return parquet.Value{}, fmt.Errorf("%s is not a DOUBLE", raw)
	}
	return parquet.DoubleValue(f), nil
}

func booleanValue(raw []byte) (parquet.Value, error) {
	switch string(raw) {
	case "true":
		return parquet.BooleanValue(true), nil
	case "false":
		return parquet.BooleanValue(false), nil
	}
	return parquet.Value{}, fmt.Errorf("%s is not a BOOLEAN", raw)
}

func timestampValue(raw []byte) (parquet.Value, error) {
	s, err := unquote(raw)
	if err != nil {
		return parquet.Value{}, fmt.Errorf("%s is not a timestamp string", raw)
	}
	us, ok := parseMicros(s)
	if !ok {
		ts, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			return parquet.Value{}, err
		}
		us = ts.UnixMicro()
	}
	return parquet.Int64Value(us), nil
}

func jsonValue(raw []byte) (parquet.Value, error) { return parquet.ByteArrayValue(raw), nil }

func stringValue(raw []byte) (parquet.Value, error) {
	if raw[0] != '"' {
		// A number, boolean, object or array in a column that was
		// widened to VARCHAR (enrich.widen_to_string) while this row
		// waited: its JSON text, as enrich now writes such values.
		return parquet.ByteArrayValue(raw), nil
	}
	s, err := unquote(raw)
	if err != nil {
		return parquet.Value{}, err
	}
	return parquet.ByteArrayValue(s), nil
}

// parseMicros reads the layout enrich writes, 2006-01-02T15:04:05.000000Z,
// as microseconds since the epoch, without time.Parse; ok is false for
// anything else (which the caller parses the slow way).
func parseMicros(s []byte) (int64, bool) {
	if len(s) != 27 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return 0, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range s[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	us, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 February
		return 0, false
	}
	return t.Unix()*1e6 + int64(us), true
}

// unquote returns the content of a JSON string; without escapes it is a
// sub-slice of raw.
func unquote(raw []byte) ([]byte, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return nil, fmt.Errorf("%s is not a string", raw)
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}
