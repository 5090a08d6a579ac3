package collect

import (
	"bytes"
	"errors"
	"net/http"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// SegmentTypes are the single-message routes of the Segment/RudderStack HTTP
// API (POST /v1/<type>); POST /v1/batch takes {"batch": [messages]}.
var SegmentTypes = []string{"track", "identify", "page", "screen", "group", "alias"}

func keySet(keys []string) map[string]bool {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// handleSegment serves the Segment-style routes. The write key comes from
// Basic auth (the key as user name, as Segment's HTTP API has it) or from the
// body's "writeKey" (as analytics-node sends it).
func (c *Collector) handleSegment(w http.ResponseWriter, r *http.Request) {
	basicKey, _, _ := r.BasicAuth()
	batch := r.URL.Path == "/v1/batch"
	c.accept(w, r, func(body []byte) (int, map[string]string, int, error) {
		n, err := countJSON(body)
		if err != nil {
			return 0, nil, http.StatusBadRequest, err
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n\ufeff")
		if n != 1 || len(trimmed) == 0 || trimmed[0] != '{' {
			return 0, nil, http.StatusBadRequest, errors.New(`send one JSON object: a message, or {"batch": [messages]} to /v1/batch`)
		}
		key := basicKey
		var msgs []byte
		_ = jsonseq.Fields(body, func(k, v []byte) error {
			switch string(k) {
			case "writeKey":
				if key == "" && len(v) > 1 && v[0] == '"' {
					key = string(v[1 : len(v)-1])
				}
			case "batch":
				msgs = v
			}
			return nil
		})
		if c.writeKeys != nil && !c.writeKeys[key] {
			return 0, nil, http.StatusUnauthorized, errors.New("unknown or missing write key: send it as the Basic auth user name or as \"writeKey\" in the body")
		}
		var headers map[string]string
		if key != "" {
			headers = map[string]string{sluice.HeaderWriteKey: key}
		}
		if !batch {
			return 1, headers, 0, nil
		}
		if len(msgs) == 0 || msgs[0] != '[' {
			return 0, nil, http.StatusBadRequest, errors.New(`a /v1/batch body needs "batch": an array of messages`)
		}
		n, err = jsonseq.Count(msgs)
		return n, headers, http.StatusBadRequest, err
	})
}
