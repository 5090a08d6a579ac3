// Package enrich turns what collectors stored on `raw` into canonical events
// on `events`, and everything it cannot turn into an event into typed rows on
// `bad`. Nothing is dropped silently: each input value ends up as an event, a
// bad row, or a duplicate of an event already published.
//
// Promises:
//   - Output is idempotent per raw message: outputs carry message ids derived
//     from the raw sequence, event ids that enrich assigns are derived from the
//     raw position, and duplicate event ids within the dedupe window are
//     dropped (the window is rebuilt from `events` on start, so a crash does not
//     forget it). A raw message is acknowledged only after its output is
//     stored. The output of one batch is stored while the next is enriched
//     (bus.ConsumePipelined); the ids being stored count as seen.
//   - A column's type never changes silently: the first value of a field fixes
//     its type in the table schema; BIGINT may widen to DOUBLE; any other
//     conflict sends the event to `bad` as a schema_violation.
package enrich

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/google/uuid"
	syslog "github.com/leodido/go-syslog/v4"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/enrich/iglu"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// Options configure an Enricher.
type Options struct {
	Bus          *bus.Bus
	DedupeWindow time.Duration // default 10m
	Enrichments  []Enrichment  // run in order on every event
	// Iglu validates self-describing data; nil validates nothing.
	Iglu *iglu.Registry
	// RejectUnknownSchemas makes self-describing data whose schema no
	// registry holds a schema_violation (enrich.iglu.unknown: bad).
	RejectUnknownSchemas bool
	// Fingerprint adds event_fingerprint and derives the ids of events that
	// came without one from it (enrich.fingerprint).
	Fingerprint bool
	// WidenToString turns a column into VARCHAR when a value of another
	// type arrives for it (enrich.widen_to_string), instead of making the
	// event a schema_violation; values that are not strings are kept as
	// their JSON text.
	WidenToString bool
	// Streams are the streams of sources' own (besides logs) that records
	// may go to.
	Streams []string
	Logger  *slog.Logger
}

// Enricher is the raw -> events/bad stage.
type Enricher struct {
	bus  *bus.Bus
	log  *slog.Logger
	seen *dedupe
	// byEventIDs names messages of events by the events they hold
	// (appendChunks): only when the dedupe window is at least the bus's
	// duplicate window, which then drops nothing the window would keep.
	byEventIDs bool
	schema     sluice.Schema
	rev        uint64
	now        func() time.Time

	syslog  syslog.Machine // made on first use
	colIdx  map[string]int // schema column positions by exact name
	colKeys []string       // of schema columns, as encodeEvent writes them: `,"name":`
	// colCache remembers the columns of the names columnIndex was asked
	// for by their address: most come from fixed tables, the same strings
	// from event to event, and are found without hashing them.
	colCache [256]struct {
		name string
		i    int
	}
	enrichments   []Enrichment
	iglu          *iglu.Registry
	rejectUnknown bool
	fingerprint   bool
	widenToString bool
	keys          map[string]schemaKey // parsed Iglu URIs

	// The event ids each raw message (by sequence) added to the dedupe
	// window, until its output is stored: if it is not, they are forgotten
	// (storeFailed says storing failed, and every unstored message comes
	// again), and so are those of a message that comes again.
	mu          sync.Mutex
	unconfirmed map[uint64][]idKey
	storeFailed bool
	streams     []string
	parsers     map[string]parserEntry // by format and pattern

	// Scratch space reused from event to event (handle runs one batch at a
	// time), so the hot path allocates little.
	scratch struct {
		canon  []string
		own    []ownField
		seen   [][]byte
		event  Event // what enrichments see
		params []param
		tp2    []tp2Event // of a tp2 body, their fields in params
		fields []uint8    // of params: where in spFields
		// contexts are the contexts of the event being built.
		contexts []sdj
		pairs    []param // what the event fingerprint covers
		// slab holds the encoded values of the event's own fields (see raw).
		slab []byte
		// lines holds encoded events, one after the other; it is only
		// ever appended to (the lines of a batch are referenced until the
		// batch is stored, while the next one is enriched), and replaced
		// by a new one when full.
		lines []byte
		// text holds the strings of events that had to be decoded.
		text textBlocks
		// receivedAtText is receivedAt as appendTime writes it.
		receivedAt     time.Time
		receivedAtText []byte
	}
}

// consumerName is the durable consumer enrich reads raw through.
const consumerName = "enrich"

// New returns an Enricher; Run starts it.
func New(o Options) *Enricher {
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Enricher{unconfirmed: map[uint64][]idKey{}, bus: o.Bus, log: o.Logger, seen: newDedupe(o.DedupeWindow), byEventIDs: o.DedupeWindow >= bus.DuplicateWindow, now: time.Now, enrichments: o.Enrichments,
		iglu: o.Iglu, rejectUnknown: o.RejectUnknownSchemas, fingerprint: o.Fingerprint, widenToString: o.WidenToString, streams: o.Streams}
}

// Run rebuilds the dedupe window from `events`, then enriches raw messages
// until ctx is done.
func (e *Enricher) Run(ctx context.Context) error {
	var err error
	if e.schema, e.rev, err = e.bus.Schema(ctx, sluice.StreamEvents); err != nil {
		return err
	}
	if err := e.rebuild(ctx); err != nil {
		return fmt.Errorf("enrich: rebuild dedupe window: %w", err)
	}
	err = e.bus.ConsumePipelined(ctx, sluice.StreamRaw, consumerName, 64, e.handle)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Lag is how many raw messages are not yet enriched.
func (e *Enricher) Lag(ctx context.Context) (uint64, error) {
	return e.bus.Pending(ctx, sluice.StreamRaw, consumerName)
}

// rebuild reads the events published within the dedupe window back into it.
func (e *Enricher) rebuild(ctx context.Context) error {
	info, err := e.bus.Info(ctx, sluice.StreamEvents)
	if err != nil {
		return err
	}
	if info.Msgs == 0 {
		return nil
	}
	r, err := e.bus.ReadSince(ctx, sluice.StreamEvents, e.now().Add(-e.seen.window))
	if err != nil {
		return err
	}
	defer r.Close()
	timeout := time.NewTimer(2 * time.Second)
	defer timeout.Stop()
	n := 0
	for {
		select {
		case m, ok := <-r.C():
			if !ok {
				return ctx.Err()
			}
			for line := range bytes.Lines(m.Data) {
				if id, ok := leadingEventID(line); ok {
					e.seen.add(id, m.Time)
					n++
				}
			}
			if m.Seq >= info.LastSeq {
				e.log.Info("enrich: dedupe window rebuilt", "event_ids", n)
				return nil
			}
			timeout.Reset(2 * time.Second)
		case <-timeout.C:
			// Nothing at or after the window start: it is empty.
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle enriches a batch of raw messages and returns how to store the
// output; Consume stores it while the next batch is enriched.
func (e *Enricher) handle(ctx context.Context, batch []bus.Msg) (bus.Finish, error) {
	e.mu.Lock()
	if e.storeFailed {
		// That batch and the one enriched meanwhile come again: forget
		// their ids.
		for _, keys := range e.unconfirmed {
			e.seen.forget(keys)
		}
		clear(e.unconfirmed)
		e.storeFailed = false
	}
	// A message whose output was not stored comes again (the bus failed
	// the batch after its predecessor's store failed): its ids were never
	// published.
	for _, m := range batch {
		if keys, ok := e.unconfirmed[m.Seq]; ok {
			e.seen.forget(keys)
			delete(e.unconfirmed, m.Seq)
		}
	}
	e.mu.Unlock()
	var out []bus.Outgoing
	schemaChanged := false
	var stats counts
	maxMsg := int(e.bus.MaxPayload() / 2)
	keys := make([][]idKey, len(batch))
	for i, m := range batch {
		res := e.enrichMessage(m, &keys[i])
		stats.add(res.counts)
		schemaChanged = schemaChanged || res.schemaChanged
		var eventIDs []string
		if e.byEventIDs {
			eventIDs = res.eventIDs
		}
		out = appendChunks(out, sluice.StreamEvents, fmt.Sprintf("e-%d", m.Seq), res.events, eventIDs, maxMsg)
		out = appendChunks(out, sluice.StreamBad, fmt.Sprintf("b-%d", m.Seq), res.bad, nil, maxMsg)
		out = appendChunks(out, sluice.StreamLogs, fmt.Sprintf("l-%d", m.Seq), res.logs, nil, maxMsg)
		for _, s := range slices.Sorted(maps.Keys(res.streams)) {
			out = appendChunks(out, s, fmt.Sprintf("s-%s-%d", s, m.Seq), res.streams[s], nil, maxMsg)
		}
	}
	// The ids count as seen from now on, so that the next batch, enriched
	// while this one is stored, drops their duplicates.
	e.mu.Lock()
	for i, m := range batch {
		e.unconfirmed[m.Seq] = keys[i]
	}
	e.mu.Unlock()
	if schemaChanged {
		// Saved before the rows that need it are published: the archiver
		// types rows by the schema record.
		rev, err := e.bus.SaveSchema(ctx, e.schema, e.rev)
		if err != nil {
			// Another node changed the schema: start over with its version.
			e.schema, e.rev, _ = e.bus.Schema(ctx, sluice.StreamEvents)
			e.colIdx, e.colKeys = nil, nil
			clear(e.colCache[:])
			e.forgetBatch(batch)
			return nil, fmt.Errorf("save schema: %w", err)
		}
		e.rev = rev
	}
	return func(ctx context.Context) error {
		if err := e.bus.PublishAll(ctx, out); err != nil {
			e.mu.Lock()
			e.storeFailed = true
			e.mu.Unlock()
			return err
		}
		e.mu.Lock()
		for _, m := range batch {
			delete(e.unconfirmed, m.Seq)
		}
		e.mu.Unlock()
		stats.publish()
		return nil
	}, nil
}

// forgetBatch forgets the ids a batch added: it will come again.
func (e *Enricher) forgetBatch(batch []bus.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range batch {
		e.seen.forget(e.unconfirmed[m.Seq])
		delete(e.unconfirmed, m.Seq)
	}
}

// appendChunks cuts NDJSON lines into messages below max bytes, with the
// message ids id-0, id-1, … or, when eventIDs (the lines' event ids) are
// given, ids made of the event ids each message holds: the same events
// sent again (a client retrying a request whose answer it lost, taken in
// by another process whose dedupe window has not seen them) make the same
// message, which the bus drops within its duplicate window.
func appendChunks(out []bus.Outgoing, stream, id string, lines [][]byte, eventIDs []string, max int) []bus.Outgoing {
	total := 0
	for _, l := range lines {
		total += len(l)
	}
	var buf []byte
	k, first := 0, 0
	emit := func(end int) {
		msgID := id + "-" + strconv.Itoa(k)
		if eventIDs != nil {
			h := sha256.New()
			for _, e := range eventIDs[first:end] {
				h.Write([]byte(e))
				h.Write([]byte{0})
			}
			msgID = "ev-" + hex.EncodeToString(h.Sum(nil)[:16])
		}
		out = append(out, bus.Outgoing{Stream: stream, Data: buf, MsgID: msgID})
		k, first = k+1, end
		total -= len(buf)
		buf = nil
	}
	for i, l := range lines {
		if len(buf) > 0 && len(buf)+len(l) > max {
			emit(i)
		}
		if buf == nil {
			buf = make([]byte, 0, min(total, max))
		}
		buf = append(buf, l...)
	}
	if len(buf) > 0 {
		emit(len(lines))
	}
	return out
}

// result is what one raw message became.
type result struct {
	events, bad   [][]byte
	eventIDs      []string // of events, line by line
	logs          [][]byte
	streams       map[string][][]byte // records for streams of sources' own
	schemaChanged bool
	counts
}

// enrichMessage enriches one raw message; ids collects the keys of the event
// ids it adds to the dedupe window.
func (e *Enricher) enrichMessage(m bus.Msg, ids *[]idKey) result {
	var res result
	payloads, err := sluice.DecodeFrame(m.Data)
	if err != nil {
		res.bad = append(res.bad, e.badLine(sluice.BadRow{
			Type: sluice.BadCollectorPayloadFormat, Message: err.Error(), RawSeq: m.Seq,
			ReceivedAt: m.Time, Payload: string(m.Data),
		}))
		res.failed++
		return res
	}
	for pi := range payloads {
		e.enrichPayload(&res, m.Seq, pi, &payloads[pi], ids)
	}
	return res
}

func (e *Enricher) enrichPayload(res *result, seq uint64, pi int, p *sluice.Payload, ids *[]idKey) {
	bad := func(typ, msg, payload, eventID string) {
		res.bad = append(res.bad, e.badLine(sluice.BadRow{
			Type: typ, Message: msg, ReceivedAt: p.ReceivedAt, Collector: p.Collector,
			Path: p.Path, IP: p.IP, RawSeq: seq, EventID: eventID, Payload: payload,
			ContentType: p.ContentType, Headers: replayHeaders(p.Headers),
		}))
		res.failed++
	}
	switch p.ContentType {
	case sluice.ContentTypeSyslog:
		e.enrichSyslog(res, p, bad)
		return
	case sluice.ContentTypeRecords:
		e.enrichRecords(res, p, bad)
		return
	}
	if isSnowplow(p.Path) {
		e.enrichSnowplow(res, seq, pi, p, ids, bad)
		return
	}
	if isSegment(p.Path) {
		e.enrichSegment(res, seq, pi, p, ids, bad)
		return
	}
	vals, err := jsonseq.Split(p.Body)
	if err != nil {
		bad(sluice.BadCollectorPayloadFormat, "body is not JSON: "+err.Error(), string(p.Body), "")
		return
	}
	for vi, v := range vals {
		e.addEvent(res, v, p, seq, pi, vi, ids, bad)
	}
}

// addEvent turns one JSON value into an event of the batch, a bad row or a
// duplicate.
func (e *Enricher) addEvent(res *result, v []byte, p *sluice.Payload, seq uint64, pi, vi int, ids *[]idKey, bad func(typ, msg, payload, eventID string)) {
	ev, ferr := e.toEvent(v, p, seq, pi, vi)
	if ferr != nil {
		bad(ferr.typ, ferr.msg, string(v), ferr.eventID)
		return
	}
	e.keep(res, ev, ids)
}

// keep adds a built event to the batch unless it is a duplicate.
func (e *Enricher) keep(res *result, ev built, ids *[]idKey) {
	// Even a duplicate has extended e.schema: save it, or a later event
	// with that column would publish it without a schema record.
	if ev.schemaChanged {
		res.schemaChanged = true
	}
	k := e.seen.key(ev.id)
	if !e.seen.addNew(k, e.now()) {
		// Published within the window, being published with the batch
		// before this one, or earlier in this batch.
		res.duplicates++
		return
	}
	*ids = append(*ids, k)
	res.events = append(res.events, ev.line)
	res.eventIDs = append(res.eventIDs, ev.id)
	res.enriched++
}

// failure is why a value could not become an event.
type failure struct {
	typ, msg, eventID string
}

// built is one enriched event, encoded.
type built struct {
	id            string
	line          []byte
	schemaChanged bool
}

// reservedFields are the lake's partition columns; an event field of that name
// would clash with them in every engine that reads hive partitions.
var reservedFields = map[string]bool{"dt": true, "hr": true}

// canonicalIndex maps a lower-cased name to its canonical column position.
var canonicalIndex = func() map[string]int {
	m := make(map[string]int, len(sluice.EventColumns))
	for i, c := range sluice.EventColumns {
		m[c.Name] = i
	}
	return m
}()

// Positions of the canonical columns that are not plain strings from the event.
var (
	colEventID    = canonicalIndex["event_id"]
	colEventTime  = canonicalIndex["event_time"]
	colReceivedAt = canonicalIndex["received_at"]
	colCollector  = canonicalIndex["collector"]
	colEvent      = canonicalIndex["event"]
	colIP         = canonicalIndex["ip"]
	colUserAgent  = canonicalIndex["useragent"]
)

// Positions of the canonical columns the built-in enrichments read and
// write, which they use rather than look the names up for every event.
var (
	colAnonymousID = canonicalIndex["anonymous_id"]
	colPageURL     = canonicalIndex["page_url"]
	colReferrer    = canonicalIndex["referrer"]
	colBrowser     = canonicalIndex["browser"]
	colOS          = canonicalIndex["os"]
	colDeviceClass = canonicalIndex["device_class"]
)

var idNamespace = uuid.MustParse("6f1c2a52-5b7e-4e39-9c55-6a0f3e0d5b11")

// findEventID returns the event_id of a JSON object, if it has a string one,
// so that a bad row names its event wherever the field stood.
func findEventID(v []byte) string { return findString(v, "event_id") }

// findString returns the string field key of a JSON object (matched
// case-insensitively), or "".
func findString(v []byte, key string) string {
	var out string
	_ = jsonseq.Fields(v, func(k, raw []byte) error {
		if strings.EqualFold(string(k), key) {
			out, _ = canonicalString(k, raw, nil)
			out = strings.Clone(out)
			return errStop
		}
		return nil
	})
	return out
}

// errStop ends a jsonseq.Fields walk early.
var errStop = errors.New("stop")

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

// startEvent hands out the scratch space of a new event: its canonical
// columns, cleared, and an empty list of its own fields (give it back in
// e.scratch.own when done).
func (e *Enricher) startEvent() (canon []string, own []ownField) {
	sc := &e.scratch
	if sc.canon == nil {
		sc.canon = make([]string, len(sluice.EventColumns))
	}
	clear(sc.canon)
	sc.pairs = sc.pairs[:0]
	sc.slab = sc.slab[:0]
	if cap(sc.own) < 64 {
		// Room for an event's fields and what enrichments add: the
		// callers give back own as they left it, not as finish grew it.
		sc.own = make([]ownField, 0, 64)
	}
	return sc.canon, sc.own[:0]
}

// slab is where to append an own field's encoded value; pass the result to
// raw. Values of one event share it, saving an allocation each: a value's
// bytes are never written again while the event is built, even when the
// slab grows (the old array stays with the values that point into it).
func (e *Enricher) slab() []byte { return e.scratch.slab }

// raw takes the value just appended to the slab.
func (e *Enricher) raw(grown []byte) []byte {
	start := len(e.scratch.slab)
	e.scratch.slab = grown
	return grown[start:len(grown):len(grown)]
}

// toEvent builds one canonical event from a JSON value that jsonseq.Split
// returned (so it is valid JSON).
func (e *Enricher) toEvent(v []byte, p *sluice.Payload, seq uint64, pi, vi int) (built, *failure) {
	if len(v) == 0 || v[0] != '{' {
		return built{}, &failure{typ: sluice.BadCollectorPayloadFormat, msg: fmt.Sprintf("expected a JSON object for an event, got %s", jsonKind(v))}
	}
	sc := &e.scratch
	canon, own := e.startEvent()
	seen := sc.seen[:0] // names so far, to catch duplicates that differ only in case
	defer func() { sc.own, sc.seen = own[:0], seen[:0] }()
	var eventTime time.Time
	var f *failure
	err := jsonseq.Fields(v, func(key, raw []byte) error {
		if e.fingerprint && !bytes.EqualFold(key, []byte("event_id")) {
			sc.pairs = append(sc.pairs, param{k: keyString(key), v: bodyString(raw)})
		}
		lower := key
		if hasUpper(key) {
			lower = bytes.ToLower(key)
		}
		// Fold as columnIndex does, or two fields of one event could land
		// in one column.
		for _, s := range seen {
			if len(s) == len(key) && bytes.EqualFold(s, key) {
				f = &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field %q appears twice (names are case-insensitive in SQL)", key)}
				return errStop
			}
		}
		seen = append(seen, key)
		if i, ok := canonicalIndex[string(lower)]; ok {
			switch i {
			case colEventTime:
				eventTime, f = parseEventTime(raw)
			case colReceivedAt, colCollector:
				// Set by sluice, never by the client.
			default:
				canon[i], f = canonicalString(key, raw, &e.scratch.text)
			}
			if f != nil {
				return errStop
			}
			return nil
		}
		name := string(key)
		if reservedFields[string(lower)] {
			f = &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field %q is reserved for the lake's partitions; rename it", name)}
			return errStop
		}
		if !utf8.ValidString(name) || name == "" || len(name) > 128 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 }) {
			f = &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field name %q is not usable as a column: use 1-128 printable characters", name)}
			return errStop
		}
		typ, ok := valueType(raw)
		if !ok {
			return nil // null: no column, the value is NULL
		}
		if typ == sluice.TypeDouble {
			// The lake parses it back; ±Inf has no place in a DOUBLE column.
			if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
				f = &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field %q: %s is out of the range of a DOUBLE", name, describe(raw))}
				return errStop
			}
		}
		if typ == sluice.TypeJSON {
			raw = pairSurrogates(raw)
		}
		own = append(own, ownField{name: name, typ: typ, raw: validUTF8(raw)})
		return nil
	})
	if err != nil && f == nil {
		return built{}, &failure{typ: sluice.BadCollectorPayloadFormat, msg: "event is not a JSON object: " + err.Error()}
	}
	if f != nil {
		// The walk stopped at the failure; event_id may come after it.
		f.eventID = findEventID(v)
		return built{}, f
	}
	if canon[colEvent] == "" {
		return built{}, &failure{typ: sluice.BadTrackerProtocol, msg: `event has no name: set "event" to a non-empty string such as "page_view"`, eventID: canon[colEventID]}
	}
	if eventTime.IsZero() {
		eventTime = p.ReceivedAt
	}
	if canon[colIP] == "" {
		canon[colIP] = p.IP
	}
	if canon[colUserAgent] == "" {
		canon[colUserAgent] = p.UserAgent
	}
	return e.finish(canon, own, eventTime, e.takeFingerprint(), p, seq, pi, vi)
}

// finish completes an event whatever protocol it came in: its id, the
// enrichments, its columns checked against the table schema, the encoded line.
func (e *Enricher) finish(canon []string, own []ownField, eventTime time.Time, fingerprint string, p *sluice.Payload, seq uint64, pi, vi int) (built, *failure) {
	if fingerprint != "" {
		own = append(own, ownField{name: "event_fingerprint", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), fingerprint))})
	}
	switch {
	case canon[colEventID] != "":
	case fingerprint != "":
		canon[colEventID] = uuid.NewSHA1(idNamespace, []byte("fingerprint/"+fingerprint)).String()
	default:
		canon[colEventID] = generatedID(p, seq, pi, vi)
	}
	canon[colCollector] = p.Collector
	if len(e.enrichments) > 0 {
		// The Event lives in the Enricher, so that handing it to the
		// enrichments costs no allocation.
		ev := &e.scratch.event
		*ev = Event{canon: canon, own: own, e: e}
		for _, en := range e.enrichments {
			en.Enrich(ev)
		}
		own = ev.own
		*ev = Event{}
	}
	changed, f := e.checkSchema(own)
	if f != nil {
		f.eventID = canon[colEventID]
		return built{}, f
	}
	return built{id: canon[colEventID], line: e.encodeEvent(canon, eventTime, p.ReceivedAt, own), schemaChanged: changed}, nil
}

// generatedID is the event_id of an event that came without one: derived from
// where it sits on `raw` (or in the bad row it was replayed from), so that
// enriching the same input again yields the same id.
func generatedID(p *sluice.Payload, seq uint64, pi, vi int) string {
	if r := p.Headers[sluice.HeaderReplayOf]; r != "" {
		return uuid.NewSHA1(idNamespace, fmt.Appendf(nil, "replay/%s/%d", r, vi)).String()
	}
	return uuid.NewSHA1(idNamespace, fmt.Appendf(nil, "%d/%d/%d", seq, pi, vi)).String()
}

// ownField is one of the event's own top-level fields.
type ownField struct {
	name string
	typ  sluice.ColumnType
	raw  []byte
	key  string // name as encodeEvent writes it, if checkSchema knows it
}

// checkSchema fits the event's own fields into the table schema, adding new
// columns and widening BIGINT to DOUBLE. Field names take the spelling the
// schema already has (SQL names are case-insensitive).
func (e *Enricher) checkSchema(own []ownField) (bool, *failure) {
	changed := false
	type change struct {
		i   int
		typ sluice.ColumnType
	}
	var widen []change
	var add []sluice.Column
	for k := range own {
		f := &own[k]
		i := e.columnIndex(f.name)
		if i < 0 {
			add = append(add, sluice.Column{Name: f.name, Type: f.typ, Added: e.now().UTC()})
			continue
		}
		col := e.schema.Columns[i]
		f.name, f.key = col.Name, e.columnKey(i)
		switch {
		case col.Type == f.typ:
		case col.Type == sluice.TypeDouble && f.typ == sluice.TypeBigint:
			f.typ = sluice.TypeDouble
		case col.Type == sluice.TypeBigint && f.typ == sluice.TypeDouble:
			widen = append(widen, change{i, sluice.TypeDouble})
		case e.widenToString:
			if col.Type != sluice.TypeVarchar {
				widen = append(widen, change{i, sluice.TypeVarchar})
			}
			if f.typ != sluice.TypeVarchar {
				var cb bytes.Buffer
				if json.Compact(&cb, f.raw) != nil {
					cb.Reset()
					cb.Write(f.raw)
				}
				f.raw = e.raw(jsonseq.AppendString(e.slab(), cb.String()))
				f.typ = sluice.TypeVarchar
			}
		default:
			return false, &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf(
				"field %q is %s in table events, but this event has %s %s; send a %s or use a new field name",
				col.Name, col.Type, article(f.typ), describe(f.raw), col.Type)}
		}
	}
	seenNew := map[string]bool{}
	for _, c := range add {
		if seenNew[strings.ToLower(c.Name)] {
			continue
		}
		seenNew[strings.ToLower(c.Name)] = true
		e.schema.Columns = append(e.schema.Columns, c)
		changed = true
	}
	for _, w := range widen {
		e.schema.Columns[w.i].Type = w.typ
		changed = true
	}
	return changed, nil
}

func (e *Enricher) columnIndex(name string) int {
	if len(e.colIdx) != len(e.schema.Columns) {
		e.colIdx = make(map[string]int, len(e.schema.Columns))
		for i, c := range e.schema.Columns {
			e.colIdx[c.Name] = i
		}
		clear(e.colCache[:])
	}
	c := &e.colCache[(uintptr(unsafe.Pointer(unsafe.StringData(name)))>>3^uintptr(len(name)))%uintptr(len(e.colCache))]
	if c.name == name && name != "" {
		return c.i
	}
	i := e.lookupColumn(name)
	c.name, c.i = name, i
	return i
}

func (e *Enricher) lookupColumn(name string) int {
	if i, ok := e.colIdx[name]; ok {
		return i
	}
	for i, c := range e.schema.Columns {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// columnKey returns the name of column i as encodeEvent writes it before
// the column's value: `,"name":`.
func (e *Enricher) columnKey(i int) string {
	if len(e.colKeys) != len(e.schema.Columns) {
		e.colKeys = append(e.colKeys[:0], make([]string, len(e.schema.Columns))...)
	}
	if e.colKeys[i] == "" {
		e.colKeys[i] = string(append(jsonseq.AppendString([]byte{','}, e.schema.Columns[i].Name), ':'))
	}
	return e.colKeys[i]
}

func article(t sluice.ColumnType) string {
	switch t {
	case sluice.TypeBigint:
		return "an integer"
	case sluice.TypeDouble:
		return "a number"
	case sluice.TypeBoolean:
		return "a boolean"
	case sluice.TypeJSON:
		return "an object/array"
	default:
		return "a string"
	}
}

func describe(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}

// valueType infers the column type of a JSON value; ok is false for null.
func valueType(raw []byte) (sluice.ColumnType, bool) {
	switch raw[0] {
	case 'n':
		return "", false
	case '"':
		return sluice.TypeVarchar, true
	case 't', 'f':
		return sluice.TypeBoolean, true
	case '{', '[':
		return sluice.TypeJSON, true
	}
	if bytes.ContainsAny(raw, ".eE") {
		return sluice.TypeDouble, true
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err != nil {
		return sluice.TypeDouble, true // beyond int64
	}
	return sluice.TypeBigint, true
}

func jsonKind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '{':
		return "an object"
	default:
		return "a number"
	}
}

// pairSurrogates replaces the \u escapes of unpaired UTF-16 surrogates in a
// valid JSON value with \ufffd. encoding/json accepts them (and decodes them
// as U+FFFD), but DuckDB refuses to read a JSON column that holds one.
func pairSurrogates(raw []byte) []byte {
	if !bytes.Contains(raw, []byte(`\u`)) {
		return raw
	}
	var out []byte
	done := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' { // valid JSON: an escape is complete
			i++
			continue
		}
		r := hexRune(raw[i+2 : i+6])
		if utf16.IsSurrogate(r) {
			if r < 0xdc00 && i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if lo := hexRune(raw[i+8 : i+12]); lo >= 0xdc00 && lo < 0xe000 {
					i += 11
					continue
				}
			}
			out = append(append(out, raw[done:i]...), `\ufffd`...)
			done = i + 6
		}
		i += 5
	}
	if out == nil {
		return raw
	}
	return append(out, raw[done:]...)
}

func hexRune(h []byte) rune {
	n, _ := strconv.ParseUint(string(h), 16, 32)
	return rune(n)
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with U+FFFD,
// as encoding/json does when it decodes a string: the lake's string columns
// must be UTF-8, or engines refuse the whole file.
func validUTF8(raw []byte) []byte {
	if utf8.Valid(raw) {
		return raw
	}
	out := make([]byte, 0, len(raw)+8)
	for len(raw) > 0 {
		r, n := utf8.DecodeRune(raw)
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, raw[:n]...)
		}
		raw = raw[n:]
	}
	return out
}

// canonicalString reads a canonical string column: numbers and booleans are
// kept as their text, objects and arrays are refused. A string that has to
// be decoded is kept in t (nil: a new allocation).
func canonicalString(name []byte, raw []byte, t *textBlocks) (string, *failure) {
	switch raw[0] {
	case 'n':
		return "", nil
	case '"':
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			return bodyString(raw[1 : len(raw)-1]), nil
		}
		if s, ok := t.unquote(raw); ok {
			return s, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field %q: %v", name, err)}
		}
		return s, nil
	case '{', '[':
		return "", &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("field %q must be a string, got %s", name, jsonKind(raw))}
	default:
		return string(raw), nil
	}
}

// textBlocks hands out decoded strings from shared blocks, instead of an
// allocation each. A block is only ever appended to, so what it handed out
// stays valid, like a payload body, for as long as it is referenced: an
// event id may outlive the event in the batch's id sets.
type textBlocks struct{ block []byte }

// textBlock is the size of a block: the decoded strings of some hundred
// events.
const textBlock = 64 << 10

// unquote decodes a JSON string literal, as encoding/json does; ok is false
// if it is not one. A nil t allocates.
func (t *textBlocks) unquote(lit []byte) (string, bool) {
	// The most the text can take: an invalid UTF-8 byte becomes three.
	n := 3 * len(lit)
	if t == nil || n > textBlock/4 {
		b, err := jsonseq.AppendUnquoted(make([]byte, 0, n), lit)
		return bodyString(b), err == nil
	}
	if cap(t.block)-len(t.block) < n {
		t.block = make([]byte, 0, textBlock)
	}
	b, err := jsonseq.AppendUnquoted(t.block[len(t.block):], lit)
	if err != nil {
		return "", false
	}
	t.block = t.block[:len(t.block)+len(b)]
	return bodyString(b), true
}

// bodyString views b as a string without copying. b must be part of a
// payload body: bodies come from bus messages, which are never modified, so
// the string stays valid for as long as it is referenced.
func bodyString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parseEventTime reads event_time: RFC 3339 or epoch milliseconds (a number
// or a string of digits). null means "not given".
func parseEventTime(raw []byte) (time.Time, *failure) {
	bad := func() (time.Time, *failure) {
		return time.Time{}, &failure{typ: sluice.BadTrackerProtocol, msg: fmt.Sprintf(
			"event_time %s is neither RFC 3339 (2006-01-02T15:04:05Z) nor epoch milliseconds", describe(raw))}
	}
	var t time.Time
	switch raw[0] {
	case 'n':
		return time.Time{}, nil
	case '"':
		var s string
		if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 {
			s = bodyString(inner)
		} else if json.Unmarshal(raw, &s) != nil {
			return bad()
		}
		if allDigits(s) {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return bad()
			}
			t = time.UnixMilli(ms)
		} else {
			var err error
			if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return bad()
			}
		}
	default:
		ms, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || ms < 0 || ms > 253402300799999 {
			return bad()
		}
		t = time.UnixMicro(int64(ms * 1000))
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return bad()
	}
	return t.UTC(), nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// TimeLayout is how timestamps are written on the events stream.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// appendTime appends t in UTC as TimeLayout, faster than AppendFormat (it
// is written two or three times for every event).
func appendTime(buf []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(buf, TimeLayout)
	}
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	buf = append(buf, byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-')
	buf = append(two(buf, int(month)), '-')
	buf = append(two(buf, day), 'T')
	buf = append(two(buf, hour), ':')
	buf = append(two(buf, minute), ':')
	buf = append(two(buf, sec), '.')
	us := t.Nanosecond() / 1000
	for d := 100000; d > 0; d /= 10 {
		buf = append(buf, byte('0'+us/d%10))
	}
	return append(buf, 'Z')
}

// canonicalKeys are the canonical columns' names as encodeEvent writes
// them before their values: `,"app_id":`.
var canonicalKeys = func() []string {
	keys := make([]string, len(sluice.EventColumns))
	for i, c := range sluice.EventColumns {
		keys[i] = string(append(jsonseq.AppendString([]byte{','}, c.Name), ':'))
	}
	return keys
}()

// linesChunk is the size of the blocks events are encoded into: one
// allocation for some fifty events rather than one each.
const linesChunk = 64 << 10

// encodeEvent writes one NDJSON line: event_id first (the dedupe rebuild
// reads it without decoding the line), canonical columns, then own fields.
// The line stays valid (it is never written again) for as long as it is
// referenced.
func (e *Enricher) encodeEvent(canon []string, eventTime, receivedAt time.Time, own []ownField) []byte {
	lines := e.scratch.lines
	if cap(lines)-len(lines) < 2<<10 {
		lines = make([]byte, 0, linesChunk)
	}
	free := lines[len(lines):]
	// The events of a payload share when it was received.
	sc := &e.scratch
	if !receivedAt.Equal(sc.receivedAt) || sc.receivedAtText == nil {
		sc.receivedAt, sc.receivedAtText = receivedAt, appendTime(sc.receivedAtText[:0], receivedAt)
	}
	line := appendEvent(free, canon, eventTime, sc.receivedAtText, own)
	if cap(line) == cap(free) {
		// It fit.
		e.scratch.lines = lines[:len(lines)+len(line)]
	} else {
		// It did not, and append moved it: the next line starts a block.
		e.scratch.lines = nil
	}
	return line[:len(line):len(line)]
}

func appendEvent(buf []byte, canon []string, eventTime time.Time, receivedAt []byte, own []ownField) []byte {
	buf = append(buf, `{"event_id":`...)
	buf = jsonseq.AppendString(buf, canon[colEventID])
	buf = append(buf, `,"event_time":"`...)
	buf = appendTime(buf, eventTime)
	buf = append(buf, `","received_at":"`...)
	buf = append(buf, receivedAt...)
	buf = append(buf, '"')
	for i := range sluice.EventColumns {
		if i == colEventID || i == colEventTime || i == colReceivedAt || canon[i] == "" {
			continue
		}
		buf = append(buf, canonicalKeys[i]...)
		buf = jsonseq.AppendString(buf, canon[i])
	}
	for _, f := range own {
		if f.key != "" {
			buf = append(buf, f.key...)
		} else {
			buf = append(buf, ',')
			buf = jsonseq.AppendString(buf, f.name)
			buf = append(buf, ':')
		}
		if f.typ == sluice.TypeDouble && !bytes.ContainsAny(f.raw, ".eE") {
			buf = append(buf, f.raw...)
			buf = append(buf, ".0"...)
			continue
		}
		if f.typ == sluice.TypeJSON && !compact(f.raw) {
			// A pretty-printed object would break the NDJSON line.
			var cb bytes.Buffer
			if json.Compact(&cb, f.raw) == nil {
				buf = append(buf, cb.Bytes()...)
				continue
			}
		}
		buf = append(buf, f.raw...)
	}
	return append(buf, "}\n"...)
}

// compact reports whether valid JSON has no whitespace outside its strings.
func compact(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\n' || c == '\t' || c == '\r'):
			return false
		}
	}
	return true
}

// leadingEventID reads the event_id that encodeEvent writes first.
func leadingEventID(line []byte) (string, bool) {
	const prefix = `{"event_id":"`
	if !bytes.HasPrefix(line, []byte(prefix)) {
		return "", false
	}
	rest := line[len(prefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	if bytes.IndexByte(rest[:end], '\\') >= 0 {
		var v struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(line, &v) != nil {
			return "", false
		}
		return v.EventID, true
	}
	return string(rest[:end]), true
}

func (e *Enricher) badLine(b sluice.BadRow) []byte {
	b.FailedAt = e.now().UTC()
	if b.ReceivedAt.IsZero() {
		b.ReceivedAt = b.FailedAt
	}
	line, _ := json.Marshal(b)
	return append(line, '\n')
}
