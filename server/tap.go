package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
)

// TapSource is what GET /api/v1/tap reads: the bus, followed from a sequence
// without acks, so a tap leaves no consumer state behind and never holds up
// a stage.
type TapSource interface {
	Streams(ctx context.Context) ([]string, error)
	Info(ctx context.Context, stream string) (bus.StreamInfo, error)
	ReadFrom(ctx context.Context, stream string, from uint64) (*bus.Reader, error)
}

// Tap serves GET /api/v1/tap?stream=NAME&filter=EXPR&from=now|beginning|SEQ&limit=N:
// the stream's messages as NDJSON, one event per line with its bus sequence
// in `_seq`, until the client goes away, limit events were sent, or Close.
type Tap struct {
	src     TapSource
	stop    chan struct{}
	stopped sync.Once
}

// NewTap returns the tap route over src.
func NewTap(src TapSource) *Tap { return &Tap{src: src, stop: make(chan struct{})} }

// Close ends the taps in progress (they would otherwise hold up a graceful
// shutdown forever); register it with http.Server.RegisterOnShutdown.
func (t *Tap) Close() { t.stopped.Do(func() { close(t.stop) }) }

// MaxFilter bounds the length of a tap filter.
const MaxFilter = 4096

// TapError is the key of the line a tap writes when its filter fails on an
// event (that event is skipped); it is written once per tap.
const TapError = "_tap_error"

// ServeHTTP answers one tap request.
func (t *Tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream := q.Get("stream")
	names, err := t.src.Streams(r.Context())
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	if stream == "" {
		fail(w, http.StatusBadRequest, "say which stream to tap: ?stream=events (the streams are "+strings.Join(names, ", ")+")")
		return
	}
	if !slices.Contains(names, stream) {
		fail(w, http.StatusNotFound, fmt.Sprintf("no stream %q: the streams are %s", stream, strings.Join(names, ", ")))
		return
	}
	filter, err := compileFilter(q.Get("filter"))
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 0 {
			fail(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number of events (0: no limit)", s))
			return
		}
	}
	from, err := parseFrom(q.Get("from"))
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	if from == 0 { // now
		info, err := t.src.Info(r.Context(), stream)
		if err != nil {
			fail(w, http.StatusInternalServerError, err.Error())
			return
		}
		from = info.LastSeq + 1
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	rd, err := t.src.ReadFrom(ctx, stream, from)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	// The first sequence the tap reads, so a client can say where it starts.
	w.Header().Set("Sluice-Tap-From", strconv.FormatUint(from, 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	tw := tapWriter{w: w, filter: filter}
	for {
		var m bus.Msg
		var ok bool
		select {
		case m, ok = <-rd.C():
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		lines := [][]byte{rawSummary(m)}
		if stream != sluice.StreamRaw {
			lines = ndjsonLines(m.Data)
		}
		for _, line := range lines {
			if err := tw.write(m.Seq, line); err != nil {
				return
			}
			if limit > 0 && tw.sent >= limit {
				_ = rc.Flush()
				return
			}
		}
		// Flush once the reader has nothing more at hand: per batch, not
		// per message.
		if len(rd.C()) == 0 && rc.Flush() != nil {
			return
		}
	}
}

// parseFrom reads from=: the first sequence to read, 0 for now.
func parseFrom(from string) (uint64, error) {
	switch from {
	case "", "now":
		return 0, nil
	case "beginning":
		return 1, nil
	}
	seq, err := strconv.ParseUint(from, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("from %q: want now, beginning or a sequence number (1 or more)", from)
	}
	return seq, nil
}

// tapWriter writes the events a filter lets through, with their sequence.
type tapWriter struct {
	w        http.ResponseWriter
	filter   *vm.Program // nil: every event
	sent     int
	reported bool // a filter failure was written
}

func (tw *tapWriter) write(seq uint64, line []byte) error {
	out := withSeq(seq, line)
	if tw.filter != nil {
		env, err := eventEnv(out)
		if err == nil {
			var ok any
			if ok, err = expr.Run(tw.filter, env); err == nil && ok != true {
				return nil
			}
		}
		if err != nil {
			if tw.reported {
				return nil
			}
			tw.reported = true
			msg, _ := json.Marshal(map[string]string{TapError: fmt.Sprintf(
				"the filter failed on an event at sequence %d, which was skipped (as will be others it fails on, without another report): %v", seq, err)})
			_, err = tw.w.Write(append(msg, '\n'))
			return err
		}
	}
	tw.sent++
	_, err := tw.w.Write(append(out, '\n'))
	return err
}

// withSeq puts `"_seq":seq` first in a JSON object line, leaving the rest
// as it was (field order, number formatting); a line that is not an object
// becomes {"_seq":…,"_line":"…"}.
func withSeq(seq uint64, line []byte) []byte {
	out := append(make([]byte, 0, len(line)+24), `{"_seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	if len(line) > 0 && line[0] == '{' && json.Valid(line) {
		rest := bytes.TrimLeft(line[1:], " \t\r\n")
		if rest[0] != '}' {
			out = append(out, ',')
		}
		return append(out, rest...)
	}
	s, _ := json.Marshal(string(line))
	out = append(out, `,"_line":`...)
	out = append(out, s...)
	return append(out, '}')
}

// ndjsonLines splits a message of the events, bad and logs streams (and of
// sources' own streams) into its lines.
func ndjsonLines(data []byte) [][]byte {
	var lines [][]byte
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines = append(lines, line)
		}
	}
	return lines
}

// rawSummary describes a raw message without its bodies, which may be large
// or binary: when it was stored, its size, and each payload's metadata.
func rawSummary(m bus.Msg) []byte {
	type payload struct {
		sluice.Payload
		BodySize int `json:"body_size"`
	}
	summary := struct {
		Time     time.Time `json:"time"`
		Size     int       `json:"size"`
		Payloads []payload `json:"payloads,omitempty"`
		Error    string    `json:"error,omitempty"`
	}{Time: m.Time.UTC(), Size: len(m.Data)}
	ps, err := sluice.DecodeFrame(m.Data)
	if err != nil {
		summary.Error = err.Error()
	}
	for _, p := range ps {
		summary.Payloads = append(summary.Payloads, payload{Payload: p, BodySize: len(p.Body)})
	}
	b, _ := json.Marshal(summary)
	return b
}

// eventEnv decodes an event for a filter: its top-level fields become
// variables; integers are int64 and other numbers float64, so that both
// `qty > 2` and `revenue * 1.2` work.
func eventEnv(line []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var env map[string]any
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("event is not a JSON object: %w", err)
	}
	for k, v := range env {
		env[k] = numbers(v)
	}
	return env, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, x := range v {
			v[k] = numbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = numbers(x)
		}
	}
	return v
}

// compileFilter compiles a tap filter (nil for ""): a boolean expression
// over an event's top-level fields, as a pipeline's filter step reads it.
func compileFilter(src string) (*vm.Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	if len(src) > MaxFilter {
		return nil, fmt.Errorf("filter is %d bytes long; the limit is %d", len(src), MaxFilter)
	}
	prog, err := config.CompileExpr(src, true)
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return prog, nil
}
