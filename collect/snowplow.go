package collect

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

// The Snowplow tracker protocol's routes. Trackers hard-code them.
const (
	SnowplowPixelPath  = "/i"
	SnowplowIcePath    = "/ice.png"
	SnowplowPostPath   = "/com.snowplowanalytics.snowplow/tp2"
	snowplowHealthPath = "/health"
)

// ZeroNetworkUserID is the network user id of anonymous requests, as
// Snowplow's collector records it.
const ZeroNetworkUserID = "00000000-0000-0000-0000-000000000000"

// Cookie configures the network user id cookie the Snowplow routes set.
type Cookie struct {
	Name       string        // default "sp"
	Domain     string        // empty: the collector's own host
	Expiration time.Duration // default 365 days
	Secure     bool
	SameSite   http.SameSite // default None
	Disabled   bool
}

// gif is the 1×1 transparent GIF the pixel routes answer with.
var gif = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff,
	0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

// tp2Types are the media types trackers POST tp2 bodies with.
var tp2Types = map[string]bool{"": true, "application/json": true, "text/plain": true}

func (c *Collector) snowplowRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+SnowplowPixelPath, c.handlePixel)
	mux.HandleFunc("GET "+SnowplowIcePath, c.handlePixel)
	mux.HandleFunc("POST "+SnowplowPostPath, c.handleTP2)
	mux.HandleFunc("OPTIONS /{path...}", c.handlePreflight)
	mux.HandleFunc("GET "+snowplowHealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("OK"))
	})
}

// handlePixel serves GET /i and /ice.png: one event in the query string.
func (c *Collector) handlePixel(w http.ResponseWriter, r *http.Request) {
	received := time.Now().UTC()
	extra := c.snowplowHeaders(w, r)
	if r.URL.RawQuery == "" {
		// Nothing to store (a prefetch, a bot): answer like a pixel.
		collectorRequests.WithLabelValues("200").Inc()
		writePixel(w)
		return
	}
	p := c.newPending(r, received, "", []byte(r.URL.RawQuery), 1, extra)
	anonymize(p, extra)
	if c.commit(w, r, p) {
		writePixel(w)
	}
}

func writePixel(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "image/gif")
	w.Header().Set("Content-Length", strconv.Itoa(len(gif)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(gif)
}

// handleTP2 serves POST /com.snowplowanalytics.snowplow/tp2: a payload_data
// envelope, {"schema": "iglu:…/payload_data/…", "data": [events]}.
func (c *Collector) handleTP2(w http.ResponseWriter, r *http.Request) {
	extra := c.snowplowHeaders(w, r)
	p, ok := c.prepare(w, r, tp2Types, func(body []byte) (int, map[string]string, int, error) {
		n, err := countTP2(body)
		return n, extra, http.StatusBadRequest, err
	})
	if !ok {
		return
	}
	anonymize(p, extra)
	if p.events == 0 || c.commit(w, r, p) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	}
}

// countTP2 checks that body is a payload_data envelope and counts its events.
func countTP2(body []byte) (int, error) {
	n, err := countJSON(body)
	if err != nil {
		return 0, err
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n\ufeff")
	if n != 1 || len(trimmed) == 0 || trimmed[0] != '{' {
		return 0, errors.New(`a tp2 body is one JSON object: {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": [events]}`)
	}
	// Valid JSON from here on: "data" is found and its elements counted
	// by skipping values, not by checking them again. The last "data"
	// counts, as for encoding/json and enrich.
	n = -1
	_, err = jsonseq.Members(trimmed, 0, func(k []byte, at int) (int, error) {
		if string(k) != "data" {
			return jsonseq.Skip(trimmed, at)
		}
		if n = -1; trimmed[at] != '[' {
			return jsonseq.Skip(trimmed, at)
		}
		n = 0
		return jsonseq.Items(trimmed, at, func(at int) (int, error) {
			n++
			return jsonseq.Skip(trimmed, at)
		})
	})
	if err != nil || n < 0 {
		return 0, errors.New(`a tp2 body needs "data": an array of events (objects of string values)`)
	}
	return n, nil
}

// handlePreflight answers CORS preflight requests: any origin, with
// credentials, so the sp cookie works from every site a tracker runs on.
func (c *Collector) handlePreflight(w http.ResponseWriter, r *http.Request) {
	cors(w, r)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, SP-Anonymous")
	h.Set("Access-Control-Max-Age", "3600")
	w.WriteHeader(http.StatusOK)
}

func cors(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = "*"
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
}

// snowplowHeaders sets the response headers every Snowplow route sends (CORS,
// no caching, the network user id cookie) and returns the payload headers
// that record the network user id.
func (c *Collector) snowplowHeaders(w http.ResponseWriter, r *http.Request) map[string]string {
	cors(w, r)
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	if r.Header.Get("SP-Anonymous") != "" {
		return map[string]string{sluice.HeaderNetworkUserID: ZeroNetworkUserID, sluice.HeaderAnonymous: "*"}
	}
	nuid := ""
	if ck, err := r.Cookie(c.cookie.Name); err == nil {
		if id, err := uuid.Parse(ck.Value); err == nil {
			nuid = id.String()
		}
	}
	if nuid == "" {
		nuid = uuid.NewString()
	}
	if !c.cookie.Disabled {
		http.SetCookie(w, &http.Cookie{
			Name: c.cookie.Name, Value: nuid, Path: "/", Domain: c.cookie.Domain,
			Expires: time.Now().Add(c.cookie.Expiration), MaxAge: int(c.cookie.Expiration.Seconds()),
			Secure: c.cookie.Secure, SameSite: c.cookie.SameSite, HttpOnly: true,
		})
	}
	return map[string]string{sluice.HeaderNetworkUserID: nuid}
}

// anonymize drops what could identify the sender of an SP-Anonymous request.
func anonymize(p *pending, extra map[string]string) {
	if extra[sluice.HeaderAnonymous] == "" {
		return
	}
	p.payload.IP = ""
	delete(p.payload.Headers, "X-Forwarded-For")
}
