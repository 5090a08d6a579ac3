package pgcdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// The replication connection's session settings fix how PostgreSQL writes
// values as text (pgoutput sends text): the encoders below rely on them.
var sessionParams = map[string]string{
	"DateStyle":          "ISO, YMD",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "1", // the shortest text that reads back exactly
	"bytea_output":       "hex",
}

// timeLayout is how sluice writes times: UTC, microseconds.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// relation is a table as pgoutput describes it (a Relation message), with
// what encoding its rows needs prepared once.
type relation struct {
	schema, name string
	captured     bool
	head         []byte // `"schema":"…","table":"…",`
	cols         []column
	hasKey       bool
}

type column struct {
	name string
	key  bool   // part of the replica identity
	json []byte // `"name":`
	enc  encoder
}

// encoder appends the JSON of a column's value, given as PostgreSQL's text.
type encoder func(dst, text []byte) []byte

func newRelation(m *pglogrepl.RelationMessage, captured bool, types *pgtype.Map) *relation {
	r := &relation{schema: m.Namespace, name: m.RelationName, captured: captured}
	r.head = jsonseq.AppendString(append(r.head, `"schema":`...), m.Namespace)
	r.head = jsonseq.AppendString(append(r.head, `,"table":`...), m.RelationName)
	r.head = append(r.head, ',')
	for _, c := range m.Columns {
		col := column{name: c.Name, key: c.Flags&1 != 0, enc: encoderFor(c.DataType, types)}
		col.json = append(jsonseq.AppendString(nil, c.Name), ':')
		r.hasKey = r.hasKey || col.key
		r.cols = append(r.cols, col)
	}
	return r
}

// image says which columns of a tuple an image holds.
type image int

const (
	wholeRow image = iota // every column
	keyOnly               // the replica identity's columns (a 'K' tuple, or the key of a new row)
)

// appendImage appends a tuple as a JSON object. Unchanged TOAST values
// ('u') are taken from old (a full before image) when it has them, else
// left out and appended to *toast. Values longer than maxValue are
// written as null and appended to *large. A tuple whose shape does not
// match the relation is an error: the relation changed without a Relation
// message, which pgoutput never does.
func (r *relation) appendImage(dst []byte, t *tuple, which image, old *tuple, maxValue int, toast, large *[]string) ([]byte, error) {
	if len(t.kinds) != len(r.cols) {
		return dst, fmt.Errorf("%s.%s: a row of %d columns, the table has %d", r.schema, r.name, len(t.kinds), len(r.cols))
	}
	dst = append(dst, '{')
	n := 0
	for i, kind := range t.kinds {
		c := &r.cols[i]
		if which == keyOnly && !c.key {
			continue
		}
		v := t.vals[i]
		if kind == pglogrepl.TupleDataTypeToast && old != nil && i < len(old.kinds) && old.kinds[i] == pglogrepl.TupleDataTypeText {
			kind, v = old.kinds[i], old.vals[i]
		}
		if kind == pglogrepl.TupleDataTypeToast {
			*toast = append(*toast, c.name)
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, c.json...)
		switch {
		case kind == pglogrepl.TupleDataTypeNull:
			dst = append(dst, "null"...)
		case maxValue >= 0 && len(v) > maxValue || maxValue < 0:
			dst = append(dst, "null"...)
			*large = append(*large, c.name)
		case kind == pglogrepl.TupleDataTypeText:
			dst = c.enc(dst, v)
		default:
			// Binary values are only sent when asked for (binary 'true').
			return dst, fmt.Errorf("%s.%s: column %s came in format %q", r.schema, r.name, c.name, kind)
		}
	}
	return append(dst, '}'), nil
}

// encoderFor picks the encoder of a type: numbers as JSON numbers, bool,
// json and jsonb as JSON, timestamps as RFC 3339 text, arrays of known
// types as JSON arrays (decoded with pgx's type map), and everything else
// (text, uuid, numeric's NaN, intervals, enums, …) as PostgreSQL's text.
func encoderFor(oid uint32, types *pgtype.Map) encoder {
	switch oid {
	case pgtype.BoolOID:
		return appendBool
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID:
		return appendNumber
	case pgtype.JSONOID, pgtype.JSONBOID:
		return appendJSON
	case pgtype.TimestamptzOID:
		return appendTimestamptz
	case pgtype.TimestampOID:
		return appendTimestamp
	}
	if t, ok := types.TypeForOID(oid); ok {
		if _, isArray := t.Codec.(*pgtype.ArrayCodec); isArray {
			return func(dst, text []byte) []byte { return appendArray(dst, text, t, types) }
		}
	}
	return appendText
}

// appendLSN writes an LSN as PostgreSQL does (pglogrepl.LSN.String, without
// fmt): upper-case hex halves, "0/16B3748".
func appendLSN(dst []byte, lsn pglogrepl.LSN) []byte {
	dst = appendHex(dst, uint32(lsn>>32))
	dst = append(dst, '/')
	return appendHex(dst, uint32(lsn))
}

func appendHex(dst []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xF]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// str views b as a string without copying, for functions that only read it.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func appendText(dst, text []byte) []byte { return jsonseq.AppendString(dst, str(text)) }

func appendBool(dst, text []byte) []byte {
	switch string(text) {
	case "t":
		return append(dst, "true"...)
	case "f":
		return append(dst, "false"...)
	}
	return appendText(dst, text)
}

// appendNumber writes a number as PostgreSQL wrote it, which is valid JSON
// except for NaN and ±Infinity: those stay text.
func appendNumber(dst, text []byte) []byte {
	if !isJSONNumber(text) {
		return appendText(dst, text)
	}
	return append(dst, text...)
}

func isJSONNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - s
	}
	if n := digits(); n == 0 || (n > 1 && b[i-n] == '0') {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func appendJSON(dst, text []byte) []byte {
	if !json.Valid(text) {
		return appendText(dst, text)
	}
	return append(dst, text...)
}

// appendTimestamptz writes 2026-01-02 03:04:05.12+00 (the session is in
// UTC) as "2026-01-02T03:04:05.120000Z", the layout of every time in
// sluice. Infinity, years beyond 9999 and BC dates stay PostgreSQL's text.
func appendTimestamptz(dst, text []byte) []byte {
	if !bytes.HasSuffix(text, []byte("+00")) {
		return appendText(dst, text)
	}
	out, ok := appendISO(dst, text[:len(text)-3])
	if !ok {
		return appendText(dst, text)
	}
	return append(out[:len(out)-1], 'Z', '"')
}

// appendTimestamp writes a timestamp without time zone the same way, without
// the Z: "2026-01-02T03:04:05.120000".
func appendTimestamp(dst, text []byte) []byte {
	out, ok := appendISO(dst, text)
	if !ok {
		return appendText(dst, text)
	}
	return out
}

// appendISO writes "YYYY-MM-DD HH:MM:SS[.f…]" as a JSON string with a T and
// six fractional digits.
func appendISO(dst, t []byte) ([]byte, bool) {
	if len(t) < 19 || t[4] != '-' || t[7] != '-' || t[10] != ' ' || t[13] != ':' || t[16] != ':' {
		return dst, false
	}
	frac := t[19:]
	if len(frac) > 0 && (frac[0] != '.' || len(frac) > 7) {
		return dst, false
	}
	dst = append(dst, '"')
	dst = append(dst, t[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, t[11:19]...)
	dst = append(dst, '.')
	if len(frac) > 0 {
		dst = append(dst, frac[1:]...)
	}
	for range 7 - max(len(frac), 1) {
		dst = append(dst, '0')
	}
	return append(dst, '"'), true
}

// appendArray decodes an array with pgx's type map and writes its elements
// as the other encoders would. An array it cannot decode stays text.
func appendArray(dst, text []byte, t *pgtype.Type, types *pgtype.Map) []byte {
	v, err := t.Codec.DecodeValue(types, t.OID, pgtype.TextFormatCode, text)
	if err != nil {
		return appendText(dst, text)
	}
	return appendValue(dst, v)
}

// appendValue writes a value decoded by pgx.
func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case bool:
		return strconv.AppendBool(dst, v)
	case int16:
		return strconv.AppendInt(dst, int64(v), 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10)
	case float32:
		return appendFloat(dst, float64(v), 32)
	case float64:
		return appendFloat(dst, v, 64)
	case string:
		return jsonseq.AppendString(dst, v)
	case time.Time:
		return jsonseq.AppendString(dst, v.UTC().Format(timeLayout))
	case [16]byte: // uuid
		return fmt.Appendf(dst, `"%x-%x-%x-%x-%x"`, v[0:4], v[4:6], v[6:8], v[8:10], v[10:16])
	case pgtype.Numeric:
		if b, err := v.MarshalJSON(); err == nil {
			if isJSONNumber(b) {
				return append(dst, b...)
			}
			return jsonseq.AppendString(dst, string(bytes.Trim(b, `"`))) // NaN, Infinity
		}
	}
	if b, err := json.Marshal(v); err == nil {
		return append(dst, b...)
	}
	return jsonseq.AppendString(dst, fmt.Sprint(v))
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return jsonseq.AppendString(dst, strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}
