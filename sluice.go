// Package sluice holds the domain types that the stages of the pipeline pass to
// each other over the bus: what a collector stores on `raw` (Payload), the
// canonical columns of the `events` table, and the typed failures on `bad`
// (BadRow). The stages themselves live in their own packages:
//
//	collect  -> raw  -> enrich -> events / bad -> lake (archiver) -> warehouse
//
// Everything here is plain data plus its wire encoding; no package in this tree
// reaches into another stage's internals, only into these types and the bus.
package sluice

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The streams on the bus. Their names are a contract (DESIGN.md).
const (
	StreamRaw    = "raw"
	StreamEvents = "events"
	StreamBad    = "bad"
	StreamLogs   = "logs"
)

// Streams lists every built-in stream in the order they are created.
var Streams = []string{StreamRaw, StreamEvents, StreamBad, StreamLogs}

// Payload is one request as a collector received it: the body untouched, plus
// the metadata enrich needs to turn it into events. Collectors only frame and
// store; all parsing beyond framing happens in enrich.
type Payload struct {
	ReceivedAt  time.Time         `json:"received_at"`
	Collector   string            `json:"collector"` // which collector, e.g. "http"
	Path        string            `json:"path,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	IP          string            `json:"ip,omitempty"`
	UserAgent   string            `json:"user_agent,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"` // only the ones that matter (Referer, Origin, ...)
	Body        []byte            `json:"-"`
}

// Payload headers that collectors record for enrich.
const (
	// HeaderNetworkUserID is the Snowplow network user id: the collector's
	// cookie value, or the zero id for anonymous requests.
	HeaderNetworkUserID = "Sp-Nuid"
	// HeaderAnonymous is set when a tracker asked for anonymous tracking
	// (SP-Anonymous): enrich keeps no IP address.
	HeaderAnonymous = "Sp-Anonymous"
	// HeaderWriteKey is the Segment-style write key of the request.
	HeaderWriteKey = "Write-Key"
	// HeaderReplayOf marks a payload that `sluice bad replay` took from a
	// bad row ("<bad sequence>/<line>"); it seeds the ids enrich generates,
	// so replaying twice yields the same events.
	HeaderReplayOf = "Replay-Of"
	// The headers of records payloads (ContentTypeRecords): the source's
	// name, how to parse each record (a format, and a pattern for regex),
	// and the stream the parsed records go to.
	HeaderSource  = "Source"
	HeaderParse   = "Parse"
	HeaderPattern = "Pattern"
	HeaderStream  = "Stream"
	// HeaderCheckpoint is a file tailer's position after the message that
	// carries it; it matters to the tailer only.
	HeaderCheckpoint = "Checkpoint"
)

// ParseSyslog is the HeaderParse of records that are syslog messages (RFC
// 5424 or RFC 3164, told apart per message).
const ParseSyslog = "syslog"

// frameVersion is the first byte of every raw message; it lets a later enrich
// read what an older collector wrote.
const frameVersion = 1

// EncodeFrame packs payloads into one raw message. Collectors group concurrent
// requests into one frame so that one fsync on the bus acknowledges them all.
//
// Layout: version byte, then per payload: uvarint len, metadata JSON,
// uvarint len, body.
func EncodeFrame(payloads []Payload) ([]byte, error) {
	size := 1
	metas := make([][]byte, len(payloads))
	for i := range payloads {
		m, err := json.Marshal(&payloads[i])
		if err != nil {
			return nil, fmt.Errorf("encode payload metadata: %w", err)
		}
		metas[i] = m
		size += len(m) + len(payloads[i].Body) + 2*binary.MaxVarintLen64
	}
	out := make([]byte, 0, size)
	out = append(out, frameVersion)
	for i := range payloads {
		out = binary.AppendUvarint(out, uint64(len(metas[i])))
		out = append(out, metas[i]...)
		out = binary.AppendUvarint(out, uint64(len(payloads[i].Body)))
		out = append(out, payloads[i].Body...)
	}
	return out, nil
}

// ErrBadFrame reports a raw message that is not a frame this version can read.
var ErrBadFrame = errors.New("malformed raw frame")

// DecodeFrame is the inverse of EncodeFrame. Bodies alias data.
func DecodeFrame(data []byte) ([]Payload, error) {
	if len(data) == 0 || data[0] != frameVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrBadFrame)
	}
	data = data[1:]
	var out []Payload
	for len(data) > 0 {
		meta, rest, err := chunk(data)
		if err != nil {
			return nil, err
		}
		body, rest, err := chunk(rest)
		if err != nil {
			return nil, err
		}
		var p Payload
		if err := json.Unmarshal(meta, &p); err != nil {
			return nil, fmt.Errorf("%w: metadata: %v", ErrBadFrame, err)
		}
		p.Body = body
		out = append(out, p)
		data = rest
	}
	return out, nil
}

func chunk(data []byte) (part, rest []byte, err error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < n {
		return nil, nil, fmt.Errorf("%w: truncated", ErrBadFrame)
	}
	return data[k : k+int(n)], data[k+int(n):], nil
}

// ColumnType is the SQL type of a lake column, as DuckDB names it.
type ColumnType string

// The column types the lake knows. Widening (BIGINT -> DOUBLE) is the only
// change a column's type may go through; anything else is a schema violation.
const (
	TypeVarchar   ColumnType = "VARCHAR"
	TypeBigint    ColumnType = "BIGINT"
	TypeDouble    ColumnType = "DOUBLE"
	TypeBoolean   ColumnType = "BOOLEAN"
	TypeTimestamp ColumnType = "TIMESTAMP"
	TypeJSON      ColumnType = "JSON"
)

// Column is one column of a lake table.
type Column struct {
	Name  string     `json:"name"`
	Type  ColumnType `json:"type"`
	Added time.Time  `json:"added"`
}

// Schema is the record of a lake table's columns, in the order they appeared.
type Schema struct {
	Table   string   `json:"table"`
	Columns []Column `json:"columns"`
}

// Lookup returns the column named name.
func (s *Schema) Lookup(name string) (Column, bool) {
	for _, c := range s.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// EventColumns are the canonical columns of the `events` table (DESIGN.md), in
// table order. An event's own fields follow them as extra columns.
var EventColumns = []Column{
	{Name: "event_id", Type: TypeVarchar},
	{Name: "event_time", Type: TypeTimestamp},
	{Name: "received_at", Type: TypeTimestamp},
	{Name: "collector", Type: TypeVarchar},
	{Name: "app_id", Type: TypeVarchar},
	{Name: "platform", Type: TypeVarchar},
	{Name: "event", Type: TypeVarchar},
	{Name: "user_id", Type: TypeVarchar},
	{Name: "anonymous_id", Type: TypeVarchar},
	{Name: "session_id", Type: TypeVarchar},
	{Name: "page_url", Type: TypeVarchar},
	{Name: "page_title", Type: TypeVarchar},
	{Name: "referrer", Type: TypeVarchar},
	{Name: "ip", Type: TypeVarchar},
	{Name: "useragent", Type: TypeVarchar},
	{Name: "browser", Type: TypeVarchar},
	{Name: "os", Type: TypeVarchar},
	{Name: "device_class", Type: TypeVarchar},
}

// LogColumns are the columns of the `logs` table: syslog messages (and, later,
// tailed files), parsed.
var LogColumns = []Column{
	{Name: "timestamp", Type: TypeTimestamp},
	{Name: "received_at", Type: TypeTimestamp},
	{Name: "host", Type: TypeVarchar},
	{Name: "app", Type: TypeVarchar},
	{Name: "procid", Type: TypeVarchar},
	{Name: "msgid", Type: TypeVarchar},
	{Name: "facility", Type: TypeBigint},
	{Name: "severity", Type: TypeBigint},
	{Name: "message", Type: TypeVarchar},
	{Name: "sd", Type: TypeJSON},
	{Name: "format", Type: TypeVarchar},
	{Name: "source", Type: TypeVarchar},
	{Name: "ip", Type: TypeVarchar},
	{Name: "fields", Type: TypeJSON},
}

// ChangeColumns are the columns of the table a postgres_cdc source's stream
// is archived to: one row per change (Change), partitioned by commit_time.
var ChangeColumns = []Column{
	{Name: "lsn", Type: TypeVarchar},
	{Name: "commit_lsn", Type: TypeVarchar},
	{Name: "commit_time", Type: TypeTimestamp},
	{Name: "xid", Type: TypeBigint},
	{Name: "schema", Type: TypeVarchar},
	{Name: "table", Type: TypeVarchar},
	{Name: "op", Type: TypeVarchar},
	{Name: "seq", Type: TypeBigint},
	{Name: "before", Type: TypeJSON},
	{Name: "after", Type: TypeJSON},
	{Name: "unchanged_toast", Type: TypeJSON},
	{Name: "too_large", Type: TypeJSON},
}

// The operations of a Change.
const (
	OpInsert   = "insert"
	OpUpdate   = "update"
	OpDelete   = "delete"
	OpTruncate = "truncate"
)

// Change is one row change captured from PostgreSQL (a postgres_cdc
// source), as one JSON line on its stream. Changes are stored in commit
// order, and within a transaction in the order they were made (Seq).
type Change struct {
	// LSN is the WAL position of the change, CommitLSN that of its
	// transaction's commit, both as PostgreSQL writes them (0/16B3748).
	LSN        string    `json:"lsn"`
	CommitLSN  string    `json:"commit_lsn"`
	CommitTime time.Time `json:"commit_time"`
	XID        uint32    `json:"xid"`
	Schema     string    `json:"schema"`
	Table      string    `json:"table"`
	Op         string    `json:"op"`
	// Seq numbers the changes of one transaction from 1.
	Seq int64 `json:"seq"`
	// Before is the row before an update or delete: every column with
	// REPLICA IDENTITY FULL, else only the key. After is the row after an
	// insert or update. Either is null when it does not apply.
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	// UnchangedToast names the columns of After left out because
	// PostgreSQL did not send them: large (TOASTed) values an update did
	// not change, when Before does not have them either.
	UnchangedToast []string `json:"unchanged_toast,omitempty"`
	// TooLarge names the columns whose values were left out (null) because
	// the change would not fit in a bus message.
	TooLarge []string `json:"too_large,omitempty"`
}

// ContentTypeSyslog marks a payload that holds one syslog message.
const ContentTypeSyslog = "application/syslog"

// The failure types of bad rows (DESIGN.md).
const (
	BadCollectorPayloadFormat = "collector_payload_format"
	BadTrackerProtocol        = "tracker_protocol"
	BadSchemaViolation        = "schema_violation"
	BadEnrichmentFailure      = "enrichment_failure"
	BadSizeViolation          = "size_violation"
)

// BadRow is a typed failure: what could not become an event, why, and where it
// came from. Bad rows are never dropped: they are archived as the `bad` table.
type BadRow struct {
	FailedAt   time.Time `json:"failed_at"`
	Type       string    `json:"type"`
	Message    string    `json:"message"`
	ReceivedAt time.Time `json:"received_at"`
	Collector  string    `json:"collector"`
	Path       string    `json:"path"`
	IP         string    `json:"ip"`
	RawSeq     uint64    `json:"raw_seq"` // sequence of the raw message it came from
	EventID    string    `json:"event_id,omitempty"`
	Payload    string    `json:"payload"` // the offending input, as received
	// ContentType and Headers are the payload's, so that `sluice bad
	// replay` can hand the input back to enrich as it first came. They
	// travel on the bad stream only; the bad table does not keep them.
	ContentType string            `json:"content_type,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// BadColumns are the columns of the `bad` table.
var BadColumns = []Column{
	{Name: "failed_at", Type: TypeTimestamp},
	{Name: "type", Type: TypeVarchar},
	{Name: "message", Type: TypeVarchar},
	{Name: "received_at", Type: TypeTimestamp},
	{Name: "collector", Type: TypeVarchar},
	{Name: "path", Type: TypeVarchar},
	{Name: "ip", Type: TypeVarchar},
	{Name: "raw_seq", Type: TypeBigint},
	{Name: "event_id", Type: TypeVarchar},
	{Name: "payload", Type: TypeVarchar},
}
