package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// isSegment reports whether a payload came through a Segment-style route.
func isSegment(path string) bool {
	switch path {
	case "/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias":
		return true
	}
	return false
}

// enrichSegment turns Segment/RudderStack messages into canonical events:
// messageId, timestamp, userId, anonymousId and context (page, ip, userAgent)
// map to canonical columns; the properties of track, page and screen become
// the event's own fields; traits and context are kept as JSON columns.
func (e *Enricher) enrichSegment(res *result, seq uint64, pi int, p *sluice.Payload, ids *[]idKey, bad func(typ, msg, payload, eventID string)) {
	implied := strings.TrimPrefix(p.Path, "/v1/")
	msgs := [][]byte{p.Body}
	if p.Path == "/v1/batch" {
		implied = ""
		msgs = nil
		var batch []byte
		_ = jsonseq.Fields(bytes.TrimLeft(p.Body, " \t\r\n\ufeff"), func(k, v []byte) error {
			if string(k) == "batch" {
				batch = v
			}
			return nil
		})
		if batch == nil && p.Headers[sluice.HeaderReplayOf] != "" {
			// `sluice bad replay` sends back one message of a batch.
			batch = append(append([]byte{'['}, p.Body...), ']')
		}
		vals, err := jsonseq.Split(batch)
		if err != nil {
			bad(sluice.BadCollectorPayloadFormat, `a /v1/batch body needs "batch": an array of messages`, string(p.Body), "")
			return
		}
		msgs = vals
	}
	for vi, m := range msgs {
		flat, err := segmentEvent(m, implied, p.Headers[sluice.HeaderWriteKey])
		if err != nil {
			bad(sluice.BadTrackerProtocol, "Segment message: "+err.Error(), string(m), findString(m, "messageId"))
			continue
		}
		e.addEvent(res, flat, p, seq, pi, vi, ids, bad)
	}
}

// segmentNames are the event names of the message types other than track.
var segmentNames = map[string]string{"page": "page_view", "screen": "screen_view", "identify": "identify", "group": "group", "alias": "alias"}

// segmentEvent rewrites one message as the flat event /v1/events takes.
func segmentEvent(m []byte, implied, writeKey string) ([]byte, error) {
	var msg map[string]any
	dec := json.NewDecoder(bytes.NewReader(m))
	dec.UseNumber()
	if err := dec.Decode(&msg); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	typ, _ := msg["type"].(string)
	if typ == "" {
		typ = implied
	}
	out := map[string]any{}
	// Properties first, so that the canonical fields below win a clash.
	if props, ok := msg["properties"].(map[string]any); ok {
		for k, v := range props {
			out[k] = v
		}
	}
	switch typ {
	case "track":
		name, _ := msg["event"].(string)
		if name == "" {
			return nil, fmt.Errorf(`a track message needs "event"`)
		}
		out["event"] = name
	case "page", "screen", "identify", "group", "alias":
		out["event"] = segmentNames[typ]
		if n, ok := msg["name"].(string); ok && n != "" {
			out[typ+"_name"] = n
		}
	default:
		return nil, fmt.Errorf("unknown message type %q (track, page, screen, identify, group, alias)", typ)
	}
	set := func(col string, v any) {
		if s, ok := v.(string); ok && s != "" {
			out[col] = s
		}
	}
	set("event_id", msg["messageId"])
	for _, k := range []string{"originalTimestamp", "timestamp"} {
		set("event_time", msg[k])
	}
	set("user_id", msg["userId"])
	set("anonymous_id", msg["anonymousId"])
	set("group_id", msg["groupId"])
	set("previous_id", msg["previousId"])
	if ctx, ok := msg["context"].(map[string]any); ok {
		set("ip", ctx["ip"])
		set("useragent", ctx["userAgent"])
		if page, ok := ctx["page"].(map[string]any); ok {
			set("page_url", page["url"])
			set("page_title", page["title"])
			set("referrer", page["referrer"])
		}
		if app, ok := ctx["app"].(map[string]any); ok {
			set("app_id", app["name"])
		}
		out["context"] = ctx
	}
	if typ == "page" {
		if props, ok := msg["properties"].(map[string]any); ok {
			set("page_url", props["url"])
			set("page_title", props["title"])
			set("referrer", props["referrer"])
		}
	}
	if traits, ok := msg["traits"].(map[string]any); ok {
		out["traits"] = traits
	}
	if _, ok := out["app_id"]; !ok && writeKey != "" {
		out["app_id"] = writeKey
	}
	out["platform"] = "srv"
	if lib, ok := out["context"].(map[string]any); ok {
		if l, ok := lib["library"].(map[string]any); ok {
			if n, _ := l["name"].(string); strings.Contains(n, "analytics.js") || strings.Contains(n, "browser") {
				out["platform"] = "web"
			}
		}
	}
	return json.Marshal(out)
}
