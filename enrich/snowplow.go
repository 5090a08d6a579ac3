package enrich

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unsafe"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/enrich/iglu"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// The Snowplow tracker protocol's collector paths (collect serves them).
const (
	snowplowPixel = "/i"
	snowplowIce   = "/ice.png"
	snowplowTP2   = "/com.snowplowanalytics.snowplow/tp2"
)

func isSnowplow(path string) bool {
	return path == snowplowTP2 || path == snowplowPixel || path == snowplowIce
}

// param is one name=value of a tracker protocol event. Values are strings.
type param struct {
	k, v string
	// plain says that v is ASCII that came without escapes (jsonseq.String),
	// which AppendString writes as it is, between quotes; false when not
	// known.
	plain bool
}

// enrichSnowplow turns a tracker protocol payload into events: a tp2
// payload_data envelope holds many, a GET query string one.
func (e *Enricher) enrichSnowplow(res *result, seq uint64, pi int, p *sluice.Payload, ids *[]idKey, bad func(typ, msg, payload, eventID string)) {
	body := bytes.TrimLeft(p.Body, " \t\r\n\ufeff")
	if len(body) == 0 || body[0] != '{' {
		params, err := queryParams(bodyString(body))
		if err != nil {
			bad(sluice.BadTrackerProtocol, "query string: "+err.Error(), string(p.Body), "")
			return
		}
		e.addSnowplow(res, params, p.Body, p, seq, pi, 0, ids, bad)
		return
	}
	// The HTTP collector checked the body (countTP2); anything else is
	// checked here.
	if p.Collector != "http" || p.Headers[sluice.HeaderReplayOf] != "" {
		if n, err := jsonseq.Count(body); err != nil || n != 1 {
			bad(sluice.BadCollectorPayloadFormat, "tp2 body is not JSON", string(p.Body), "")
			return
		}
	}
	// One pass reads the envelope and its events; the body is valid JSON
	// (checked above or by the collector), so nothing is checked again.
	sc := &e.scratch
	sc.params, sc.tp2 = sc.params[:0], sc.tp2[:0]
	found, isArray := false, false
	_, _ = jsonseq.Members(body, 0, func(k []byte, at int) (int, error) {
		if string(k) != "data" {
			return jsonseq.Skip(body, at)
		}
		// The last "data" counts, as it does for encoding/json.
		found, isArray = true, body[at] == '['
		sc.params, sc.tp2 = sc.params[:0], sc.tp2[:0]
		if !isArray {
			return jsonseq.Skip(body, at)
		}
		return e.readTP2(body, at)
	})
	if !found {
		// One event on its own: what `sluice bad replay` sends back.
		isArray = true
		_, _ = e.readTP2(append(append([]byte{'['}, body...), ']'), 0)
	}
	if !isArray {
		bad(sluice.BadTrackerProtocol, `tp2 body: "data" must be an array of events`, string(p.Body), "")
		return
	}
	for vi, ev := range sc.tp2 {
		switch {
		case ev.v[0] != '{':
			bad(sluice.BadTrackerProtocol, fmt.Sprintf("tp2 event must be an object of string values, got %s", jsonKind(ev.v)), string(ev.v), "")
		case ev.f != nil:
			bad(ev.f.typ, ev.f.msg, string(ev.v), findString(ev.v, "eid"))
		default:
			e.addSnowplow(res, sc.params[ev.lo:ev.hi], ev.v, p, seq, pi, vi, ids, bad)
		}
	}
}

// tp2Event is one element of a tp2 body's "data", as readTP2 read it.
type tp2Event struct {
	v      []byte   // the element
	lo, hi int      // its fields, if it is an object: e.scratch.params[lo:hi]
	f      *failure // why its fields cannot make an event
}

// readTP2 reads the array of tp2 events that starts at b[at] into
// e.scratch.tp2 and e.scratch.params, and returns the index just past it.
func (e *Enricher) readTP2(b []byte, at int) (int, error) {
	sc := &e.scratch
	return jsonseq.Items(b, at, func(el int) (int, error) {
		ev := tp2Event{lo: len(sc.params)}
		var end int
		var err error
		if b[el] == '{' {
			end, err = jsonseq.Members(b, el, func(k []byte, at int) (int, error) {
				if b[at] == '"' {
					// A string, as nearly all are: read once.
					end, plain := jsonseq.String(b, at)
					if ev.f == nil && plain {
						sc.params = append(sc.params, param{k: keyString(k), v: bodyString(b[at+1 : end-1]), plain: true})
						return end, nil
					}
				}
				end, err := jsonseq.Skip(b, at)
				if err != nil || ev.f != nil {
					return end, err
				}
				raw := b[at:end]
				key := keyString(k)
				if raw[0] == '{' || raw[0] == '[' {
					ev.f = &failure{typ: sluice.BadTrackerProtocol, msg: fmt.Sprintf("tp2 field %q must be a string, got %s", key, jsonKind(raw))}
					return end, nil
				}
				val, f := canonicalString(k, raw, &sc.text)
				if f != nil {
					ev.f = f
					return end, nil
				}
				sc.params = append(sc.params, param{k: key, v: val})
				return end, nil
			})
		} else {
			end, err = jsonseq.Skip(b, el)
		}
		if err != nil {
			return 0, err
		}
		ev.v, ev.hi = b[el:end:end], len(sc.params)
		sc.tp2 = append(sc.tp2, ev)
		return end, nil
	})
}

// queryParams reads a GET event. Only the first value of a repeated name
// counts, as in Snowplow's collector.
func queryParams(q string) ([]param, error) {
	vals, err := url.ParseQuery(q)
	if err != nil {
		return nil, err
	}
	// In the order of their names: the same request makes the same event,
	// and new columns it brings are added in the same order.
	out := make([]param, 0, len(vals))
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		if v := vals[k]; len(v) > 0 {
			out = append(out, param{k: k, v: v[0]})
		}
	}
	return out, nil
}

func (e *Enricher) addSnowplow(res *result, params []param, input []byte, p *sluice.Payload, seq uint64, pi, vi int, ids *[]idKey, bad func(typ, msg, payload, eventID string)) {
	ev, f := e.snowplowEvent(params, p, seq, pi, vi)
	if f != nil {
		bad(f.typ, f.msg, string(input), f.eventID)
		return
	}
	e.keep(res, ev, ids)
}

// spField is a tracker protocol field and what becomes of it.
type spField struct {
	param string // its name in the tracker protocol
	kind  spKind
	// Where it lands: a canonical column (canon), or a column of its own
	// (column, typ), or two (dims, for "WxH").
	canon  int
	column string
	typ    sluice.ColumnType
	dims   [2]string
	// unfingerprinted fields are left out of the event fingerprint, as
	// Snowplow's fingerprint enrichment does: ids and when it was sent
	// differ between a request and its retry.
	unfingerprinted bool
}

// spKind says what snowplowEvent does with a field.
type spKind uint8

const (
	spIgnored        spKind = iota // Snowplow's enrich ignores fields it doesn't know, too
	spCanonical                    // a canonical column
	spOwn                          // a column of its own
	spDomainUserID                 // a column of its own that is also the anonymous_id
	spDimensions                   // "WxH": two columns
	spEventType                    // e
	spUEPlain                      // ue_pr
	spUEBase64                     // ue_px
	spContexts                     // co
	spContextsBase64               // cx
	spNetworkUserID                // tnuid
)

// spFields are the tracker protocol's fields. The names of own columns are
// those of Snowplow's atomic.events, so existing queries and habits carry
// over.
var spFields = func() []spField {
	fs := []spField{{kind: spIgnored}} // what spLookup finds for a name it does not know
	for _, kc := range [][2]string{{"eid", "event_id"}, {"aid", "app_id"}, {"p", "platform"}, {"uid", "user_id"},
		{"sid", "session_id"}, {"url", "page_url"}, {"page", "page_title"}, {"refr", "referrer"}, {"ua", "useragent"}, {"ip", "ip"}} {
		fs = append(fs, spField{param: kc[0], kind: spCanonical, canon: canonicalIndex[kc[1]]})
	}
	own := func(typ sluice.ColumnType, pairs ...string) {
		for i := 0; i < len(pairs); i += 2 {
			fs = append(fs, spField{param: pairs[i], kind: spOwn, column: pairs[i+1], typ: typ})
		}
	}
	own(sluice.TypeVarchar, "tv", "v_tracker", "tna", "name_tracker", "lang", "br_lang", "tz", "os_timezone",
		"cs", "doc_charset", "fp", "user_fingerprint",
		"se_ca", "se_category", "se_ac", "se_action", "se_la", "se_label", "se_pr", "se_property",
		"tr_id", "tr_orderid", "tr_af", "tr_affiliation", "tr_ci", "tr_city", "tr_st", "tr_state",
		"tr_co", "tr_country", "tr_cu", "tr_currency",
		"ti_id", "ti_orderid", "ti_sk", "ti_sku", "ti_nm", "ti_name", "ti_ca", "ti_category", "ti_cu", "ti_currency")
	own(sluice.TypeDouble, "se_va", "se_value", "tr_tt", "tr_total", "tr_tx", "tr_tax", "tr_sh", "tr_shipping", "ti_pr", "ti_price")
	own(sluice.TypeBigint, "vid", "domain_sessionidx", "ti_qu", "ti_quantity", "cd", "br_colordepth",
		"pp_mix", "pp_xoffset_min", "pp_max", "pp_xoffset_max", "pp_miy", "pp_yoffset_min", "pp_may", "pp_yoffset_max")
	own(sluice.TypeTimestamp, "dtm", "dvce_created_tstamp", "stm", "dvce_sent_tstamp", "ttm", "true_tstamp")
	fs = append(fs,
		spField{param: "duid", kind: spDomainUserID, column: "domain_userid", typ: sluice.TypeVarchar},
		spField{param: "res", kind: spDimensions, dims: [2]string{"dvce_screenwidth", "dvce_screenheight"}},
		spField{param: "vp", kind: spDimensions, dims: [2]string{"br_viewwidth", "br_viewheight"}},
		spField{param: "ds", kind: spDimensions, dims: [2]string{"doc_width", "doc_height"}},
		spField{param: "e", kind: spEventType},
		spField{param: "ue_pr", kind: spUEPlain},
		spField{param: "ue_px", kind: spUEBase64},
		spField{param: "co", kind: spContexts},
		spField{param: "cx", kind: spContextsBase64},
		spField{param: "tnuid", kind: spNetworkUserID},
		spField{param: "nuid", kind: spIgnored},
		spField{param: "cv", kind: spIgnored},
	)
	for i := range fs {
		switch fs[i].param {
		case "eid", "stm", "nuid", "cv":
			fs[i].unfingerprinted = true
		}
	}
	return fs
}()

// spLookup finds a tracker protocol field by name. It runs for every field
// of every event, so rather than hash the name as a map would, it packs the
// name (all are shorter than eight bytes) into a word and finds its slot by
// one multiplication: a perfect hash of the names in spFields.
// It returns an index into spFields (0 for a name it does not know): the
// fields of an event are kept as indexes, which the garbage collector need
// not follow.
func spLookup(name string) uint8 {
	w, ok := spPack(name)
	if !ok {
		return 0
	}
	if i := spSlots[(w*spMultiplier)>>(64-spSlotBits)]; spWords[i] == w {
		return i
	}
	return 0
}

// spPack packs a name of up to seven bytes, and its length, into a word
// (the name's bytes from the lowest, its length in the highest byte). Two
// loads that may overlap cover every length; an overlapping byte is the
// same in both.
func spPack(name string) (uint64, bool) {
	n := len(name)
	var w uint64
	switch {
	case n > 7:
		return 0, false
	case n >= 4:
		lo := uint64(name[0]) | uint64(name[1])<<8 | uint64(name[2])<<16 | uint64(name[3])<<24
		hi := uint64(name[n-4]) | uint64(name[n-3])<<8 | uint64(name[n-2])<<16 | uint64(name[n-1])<<24
		w = lo | hi<<(8*(n-4))
	case n >= 2:
		w = uint64(name[0]) | uint64(name[1])<<8 | (uint64(name[n-2])|uint64(name[n-1])<<8)<<(8*(n-2))
	case n == 1:
		w = uint64(name[0])
	}
	return w | uint64(n)<<56, true
}

// spWords are the packed names of spFields.
var spWords = func() []uint64 {
	ws := make([]uint64, len(spFields))
	for i, f := range spFields[1:] {
		ws[i+1], _ = spPack(f.param)
	}
	ws[0] = ^uint64(0) // no name packs to it
	return ws
}()

const spSlotBits = 10

// spSlots holds the index in spFields of the field in each slot (0: none);
// the multiplier is the first odd one, from a fixed sequence, that puts no
// two fields in one slot.
var spSlots, spMultiplier = func() ([1 << spSlotBits]uint8, uint64) {
	if len(spFields) > 255 {
		panic("too many tracker protocol fields for a uint8 index")
	}
	m := uint64(0x9e3779b97f4a7c15)
search:
	for ; ; m += 0x2545f4914f6cdd1e {
		m |= 1
		var slots [1 << spSlotBits]uint8
		for i, f := range spFields[1:] {
			w, ok := spPack(f.param)
			if !ok {
				panic("tracker protocol field name longer than 7 bytes: " + f.param)
			}
			h := (w * m) >> (64 - spSlotBits)
			if slots[h] != 0 {
				continue search
			}
			slots[h] = uint8(i + 1)
		}
		return slots, m
	}
}()

// spEventTypes are the values of e and the event_type they stand for.
var spEventTypes = map[string]string{
	"pv": "page_view", "pp": "page_ping", "se": "struct", "ue": "unstruct",
	"tr": "transaction", "ti": "transaction_item",
}

// snowplowEvent builds one canonical event from tracker protocol fields.
func (e *Enricher) snowplowEvent(params []param, p *sluice.Payload, seq uint64, pi, vi int) (built, *failure) {
	sc := &e.scratch
	canon, own := e.startEvent()
	defer func() { sc.own = own[:0] }()
	var kind, uePr, uePx, co, cx, tnuid, duid string
	var dtm, stm, ttm time.Time
	fail := func(format string, a ...any) (built, *failure) {
		return built{}, &failure{typ: sluice.BadTrackerProtocol, msg: fmt.Sprintf(format, a...), eventID: canon[colEventID]}
	}
	// The fields of each param, looked up once.
	fields := sc.fields[:0]
	defer func() { sc.fields = fields[:0] }()
	for _, kv := range params {
		fields = append(fields, spLookup(kv.k))
	}
	// The event id first, so that every failure names it.
	for i, kv := range params {
		if f := &spFields[fields[i]]; f.canon == colEventID && f.kind == spCanonical {
			canon[colEventID] = kv.v
		}
	}
	for i, kv := range params {
		if kv.v == "" {
			continue
		}
		col := &spFields[fields[i]]
		switch col.kind {
		case spIgnored:
			continue
		case spEventType:
			kind = kv.v
			continue
		case spUEPlain:
			uePr = kv.v
			continue
		case spUEBase64:
			uePx = kv.v
			continue
		case spContexts:
			co = kv.v
			continue
		case spContextsBase64:
			cx = kv.v
			continue
		case spNetworkUserID:
			tnuid = kv.v
			continue
		case spDomainUserID:
			duid = kv.v
		case spDimensions:
			w, h, ok := strings.Cut(kv.v, "x")
			wn, err1 := strconv.ParseInt(w, 10, 64)
			hn, err2 := strconv.ParseInt(h, 10, 64)
			if !ok || err1 != nil || err2 != nil || wn < 0 || hn < 0 {
				return fail("field %s: %q is not WIDTHxHEIGHT", kv.k, kv.v)
			}
			own = append(own, ownField{name: col.dims[0], typ: sluice.TypeBigint, raw: e.raw(strconv.AppendInt(e.slab(), wn, 10))},
				ownField{name: col.dims[1], typ: sluice.TypeBigint, raw: e.raw(strconv.AppendInt(e.slab(), hn, 10))})
			continue
		case spCanonical:
			canon[col.canon] = kv.v
			continue
		}
		var raw []byte
		switch col.typ {
		case sluice.TypeVarchar:
			if kv.plain {
				raw = e.raw(append(append(append(e.slab(), '"'), kv.v...), '"'))
			} else {
				raw = e.raw(jsonseq.AppendString(e.slab(), kv.v))
			}
		case sluice.TypeDouble:
			f, err := strconv.ParseFloat(kv.v, 64)
			if err != nil || f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
				return fail("field %s (%s): %q is not a number", kv.k, col.column, kv.v)
			}
			raw = e.raw(strconv.AppendFloat(e.slab(), f, 'g', -1, 64))
		case sluice.TypeBigint:
			n, err := strconv.ParseInt(kv.v, 10, 64)
			if err != nil {
				return fail("field %s (%s): %q is not an integer", kv.k, col.column, kv.v)
			}
			raw = e.raw(strconv.AppendInt(e.slab(), n, 10))
		case sluice.TypeTimestamp:
			t, ok := epochMillis(kv.v)
			if !ok {
				return fail("field %s (%s): %q is not a time in epoch milliseconds", kv.k, col.column, kv.v)
			}
			switch kv.k {
			case "dtm":
				dtm = t
			case "stm":
				stm = t
			case "ttm":
				ttm = t
			}
			raw = e.raw(append(appendTime(append(e.slab(), '"'), t), '"'))
		}
		own = append(own, ownField{name: col.column, typ: col.typ, raw: raw})
	}

	typ, ok := spEventTypes[kind]
	switch {
	case kind == "":
		return fail(`event has no type: the tracker protocol needs "e" (pv, pp, se, ue, tr or ti)`)
	case !ok:
		return fail("unknown event type e=%q (pv, pp, se, ue, tr or ti)", kind)
	}
	own = append(own, ownField{name: "event_type", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), typ))})
	canon[colEvent] = typ
	if kind == "se" && (!hasField(own, "se_category") || !hasField(own, "se_action")) {
		// Snowplow's schema for structured events requires both.
		return fail("a structured event (e=se) needs se_ca and se_ac")
	}

	if kind == "ue" {
		sdj, err := e.decodeSDJ(uePr, uePx, "ue_pr", "ue_px")
		if err != nil {
			return fail("%v", err)
		}
		if sdj == nil {
			return fail("a self-describing event (e=ue) needs ue_pr or ue_px")
		}
		inner, f := e.selfDescribing(sdj, "unstruct_event")
		if f != nil {
			f.eventID = canon[colEventID]
			return built{}, f
		}
		k := inner.key
		canon[colEvent] = k.Name
		own = append(own,
			ownField{name: "event_vendor", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), k.Vendor))},
			ownField{name: "event_name", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), k.Name))},
			ownField{name: "event_format", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), k.Format))},
			ownField{name: "event_version", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), k.Version()))},
			ownField{name: k.unstructColumn, typ: sluice.TypeJSON, raw: inner.data})
	}
	if cxt, err := e.decodeSDJ(co, cx, "co", "cx"); err != nil {
		return fail("%v", err)
	} else if cxt != nil {
		var f *failure
		if own, f = e.contexts(cxt, own); f != nil {
			f.eventID = canon[colEventID]
			return built{}, f
		}
	}

	nuid := p.Headers[sluice.HeaderNetworkUserID]
	anonymous := p.Headers[sluice.HeaderAnonymous] != ""
	if tnuid != "" && !anonymous {
		nuid = tnuid
	}
	if nuid != "" {
		own = append(own, ownField{name: "network_userid", typ: sluice.TypeVarchar, raw: e.raw(jsonseq.AppendString(e.slab(), nuid))})
	}
	if duid != "" {
		canon[colAnonymousID] = duid
	} else {
		canon[colAnonymousID] = nuid
	}
	if anonymous {
		canon[colIP] = ""
	} else if canon[colIP] == "" {
		canon[colIP] = p.IP
	}
	if canon[colUserAgent] == "" {
		canon[colUserAgent] = p.UserAgent
	}

	// Snowplow's derived timestamp: the device's clock corrected by how far
	// it was off when it sent the event; the true timestamp when given.
	eventTime := p.ReceivedAt
	switch {
	case !ttm.IsZero():
		eventTime = ttm
	case !dtm.IsZero() && !stm.IsZero():
		eventTime = p.ReceivedAt.Add(-stm.Sub(dtm))
	case !dtm.IsZero():
		// Nothing to correct the device clock by; still the tracker's
		// time (Snowplow would take the collector's).
		eventTime = dtm
	}
	for i := range own {
		if own[i].typ == sluice.TypeJSON {
			own[i].raw = validUTF8(pairSurrogates(own[i].raw))
		}
	}
	fp := ""
	if e.fingerprint {
		for i, kv := range params {
			if !spFields[fields[i]].unfingerprinted {
				sc.pairs = append(sc.pairs, kv)
			}
		}
		fp = e.takeFingerprint()
	}
	return e.finish(canon, own, eventTime, fp, p, seq, pi, vi)
}

func hasField(own []ownField, name string) bool { return fieldIndex(own, name) >= 0 }

// keyString reads the name of a JSON object member (without its quotes).
func keyString(k []byte) string {
	if bytes.IndexByte(k, '\\') < 0 {
		return bodyString(k)
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, k...), '"'), &s) != nil {
		return string(k)
	}
	return s
}

func isNotFound(err error) bool { return errors.Is(err, iglu.ErrNotFound) }

func isInvalid(err error) bool {
	var ve *iglu.ValidationError
	return errors.As(err, &ve)
}

func fieldIndex(own []ownField, name string) int {
	for i, f := range own {
		if f.name == name {
			return i
		}
	}
	return -1
}

// epochMillis reads a tracker timestamp: milliseconds since the epoch.
func epochMillis(s string) (time.Time, bool) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || ms > 253402300799999 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// decodeSDJ returns the self-describing JSON of a field pair: plain (ue_pr,
// co) or base64url (ue_px, cx). Trackers leave out the padding; some use the
// standard alphabet; both are read. nil when neither is set. The JSON is
// read, never written: it is the field's own bytes, or decoded into the
// event's slab, so it is valid until the event is built (what the event
// keeps of it is copied).
func (e *Enricher) decodeSDJ(plain, b64, plainName, b64Name string) ([]byte, error) {
	var out []byte
	switch {
	case plain != "":
		out = unsafe.Slice(unsafe.StringData(plain), len(plain))
	case b64 != "":
		src := strings.TrimRight(b64, "=")
		in := unsafe.Slice(unsafe.StringData(src), len(src))
		slab := e.slab()
		n := base64.RawURLEncoding.DecodedLen(len(src))
		grown := slices.Grow(slab, n)
		buf := grown[len(slab) : len(slab)+n]
		n, err := base64.RawURLEncoding.Decode(buf, in)
		if err != nil {
			if n, err = base64.RawStdEncoding.Decode(buf, in); err != nil {
				return nil, fmt.Errorf("field %s is not base64url: %v", b64Name, err)
			}
		}
		out = e.raw(grown[:len(slab)+n])
		plainName = b64Name
	default:
		return nil, nil
	}
	if n, err := jsonseq.Count(out); err != nil || n != 1 {
		return nil, fmt.Errorf("field %s is not JSON: %s", plainName, describe(out))
	}
	return out, nil
}

// sdj is one self-describing value: its schema and its data.
type sdj struct {
	key  schemaKey
	data []byte
}

// splitSDJ reads {"schema": "iglu:…", "data": …}. v is what decodeSDJ
// returned, or part of it: the schema may be a view of it.
func (e *Enricher) splitSDJ(v []byte) (schema string, data []byte, err error) {
	if len(v) == 0 || v[0] != '{' {
		return "", nil, fmt.Errorf("expected a self-describing JSON object, got %s", jsonKind(v))
	}
	_ = jsonseq.Fields(v, func(k, raw []byte) error {
		switch string(k) {
		case "schema":
			if raw[0] == '"' {
				schema, _ = canonicalString(k, raw, &e.scratch.text)
			}
		case "data":
			data = raw
		}
		return nil
	})
	if schema == "" {
		return "", nil, fmt.Errorf(`self-describing JSON needs "schema": an Iglu URI`)
	}
	if data == nil {
		return "", nil, fmt.Errorf(`self-describing JSON of %s has no "data"`, schema)
	}
	return schema, data, nil
}

// selfDescribing unwraps the envelope of ue_pr/ue_px and checks the event
// inside it.
func (e *Enricher) selfDescribing(v []byte, what string) (sdj, *failure) {
	_, data, err := e.splitSDJ(v)
	if err != nil {
		return sdj{}, &failure{typ: sluice.BadTrackerProtocol, msg: what + ": " + err.Error()}
	}
	return e.checkSDJ(data, sdjName{what, -1})
}

// sdjName names a self-describing value in failure messages:
// "unstruct_event", or "contexts[2]" (index >= 0).
type sdjName struct {
	what  string
	index int
}

func (n sdjName) String() string {
	if n.index < 0 {
		return n.what
	}
	return fmt.Sprintf("%s[%d]", n.what, n.index)
}

// checkSDJ reads one {"schema", "data"} and validates it.
func (e *Enricher) checkSDJ(v []byte, what sdjName) (sdj, *failure) {
	schema, data, err := e.splitSDJ(v)
	if err != nil {
		return sdj{}, &failure{typ: sluice.BadTrackerProtocol, msg: what.String() + ": " + err.Error()}
	}
	k, err := e.schemaKey(schema)
	if err != nil {
		return sdj{}, &failure{typ: sluice.BadSchemaViolation, msg: what.String() + ": " + err.Error()}
	}
	if f := e.validate(k.Key, data, what); f != nil {
		return sdj{}, f
	}
	return sdj{key: k, data: data}, nil
}

// schemaKey parses an Iglu URI, with its column suffix; both are cached, as
// a site sends few distinct schemas. uri may be a view of an event's slab:
// what is kept is a copy (the parsed key's strings are parts of it).
func (e *Enricher) schemaKey(uri string) (schemaKey, error) {
	if k, ok := e.keys[uri]; ok {
		return k, nil
	}
	uri = strings.Clone(uri)
	key, err := iglu.ParseKey(uri)
	if err != nil {
		return schemaKey{}, err
	}
	column := columnSuffix(key)
	k := schemaKey{Key: key, column: column, unstructColumn: "unstruct_event_" + column, contextsColumn: "contexts_" + column}
	if e.keys == nil || len(e.keys) > 10000 {
		e.keys = map[string]schemaKey{}
	}
	e.keys[uri] = k
	return k, nil
}

// schemaKey is a parsed Iglu URI and the column suffix of its schema, with
// the names of the columns a self-describing event and a context of it go to.
type schemaKey struct {
	iglu.Key
	column                         string
	unstructColumn, contextsColumn string
}

// validate checks data against its schema, following enrich.iglu.unknown
// for schemas no registry holds.
func (e *Enricher) validate(k iglu.Key, data []byte, what sdjName) *failure {
	if e.iglu == nil && !e.rejectUnknown {
		return nil
	}
	v, err := iglu.UnmarshalJSON(data)
	if err != nil {
		return &failure{typ: sluice.BadTrackerProtocol, msg: fmt.Sprintf("%s: data is not JSON: %v", what, err)}
	}
	err = e.iglu.Validate(k, v)
	switch {
	case err == nil:
		return nil
	case isNotFound(err):
		if e.rejectUnknown {
			return &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("%s: %v (enrich.iglu.unknown is bad: add the schema to a registry, then replay)", what, err)}
		}
		return nil
	case isInvalid(err):
		return &failure{typ: sluice.BadSchemaViolation, msg: fmt.Sprintf("%s %v", what, err)}
	default:
		// The registry could not be used (an unreadable or broken schema
		// file): not the data's fault; replay once the schema is fixed.
		return &failure{typ: sluice.BadEnrichmentFailure, msg: fmt.Sprintf("%s: schema registry: %v", what, err)}
	}
}

// contexts reads a contexts envelope into one JSON column per context
// schema, each an array of that schema's data objects, and appends them to
// own.
func (e *Enricher) contexts(v []byte, own []ownField) ([]ownField, *failure) {
	_, data, err := e.splitSDJ(v)
	if err != nil {
		return own, &failure{typ: sluice.BadTrackerProtocol, msg: "contexts: " + err.Error()}
	}
	// v is valid JSON (decodeSDJ), so data needs no second check.
	if data[0] != '[' {
		return own, &failure{typ: sluice.BadTrackerProtocol, msg: `contexts: "data" must be an array of self-describing JSON`}
	}
	items := e.scratch.contexts[:0]
	var f *failure
	_ = jsonseq.Elements(data, func(it []byte) error {
		var c sdj
		if c, f = e.checkSDJ(it, sdjName{"contexts", len(items)}); f != nil {
			return errStop
		}
		items = append(items, c)
		return nil
	})
	e.scratch.contexts = items[:0]
	if f != nil {
		return own, f
	}
	first := len(own)
	for i, c := range items {
		name := c.key.contextsColumn
		if fieldIndex(own[first:], name) >= 0 {
			continue // with the first context of its schema
		}
		buf := append(append(e.slab(), '['), c.data...)
		for _, d := range items[i+1:] {
			if d.key.contextsColumn == name {
				buf = append(append(buf, ','), d.data...)
			}
		}
		own = append(own, ownField{name: name, typ: sluice.TypeJSON, raw: e.raw(append(buf, ']'))})
	}
	return own, nil
}

// columnSuffix names the column of a schema as Snowplow's warehouse loaders
// do: vendor_name_model in snake case, e.g. com_acme_link_click_1.
func columnSuffix(k iglu.Key) string {
	return snake(k.Vendor) + "_" + snake(k.Name) + "_" + strconv.Itoa(k.Model)
}

func snake(s string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range s {
		switch {
		case unicode.IsUpper(r):
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLower = false
		case r < 0x80 && (unicode.IsLower(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
			prevLower = true
		default:
			b.WriteByte('_')
			prevLower = false
		}
	}
	return b.String()
}
