package enrich

import (
	"fmt"
	"slices"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/enrich/logparse"
	"github.com/sluice-data/sluice/internal/jsonseq"
)

type parserEntry struct {
	p   logparse.Parser
	err error
}

// parser returns the parser of a format (and pattern), compiled once.
func (e *Enricher) parser(format, pattern string) (logparse.Parser, error) {
	key := format + "\x00" + pattern
	if pe, ok := e.parsers[key]; ok {
		return pe.p, pe.err
	}
	if e.parsers == nil || len(e.parsers) > 1000 {
		e.parsers = map[string]parserEntry{}
	}
	p, err := logparse.New(format, pattern)
	e.parsers[key] = parserEntry{p, err}
	return p, err
}

// enrichRecords parses the records of a tailed file into rows of logs (or of
// the source's own stream). A record that does not parse is a bad row; the
// others land.
func (e *Enricher) enrichRecords(res *result, p *sluice.Payload, bad func(typ, msg, payload, eventID string)) {
	source, format := p.Headers[sluice.HeaderSource], p.Headers[sluice.HeaderParse]
	stream := p.Headers[sluice.HeaderStream]
	if stream == "" {
		stream = sluice.StreamLogs
	}
	whole := func(typ, msg string) {
		// Each record as a bad row of its own, so a replay after the fix
		// sees records.
		_ = sluice.ReadRecords(p.Body, func(rec []byte, _ bool) error {
			bad(typ, msg, string(rec), "")
			return nil
		})
	}
	if stream != sluice.StreamLogs && !slices.Contains(e.streams, stream) {
		whole(sluice.BadEnrichmentFailure, fmt.Sprintf("source %s: stream %q is not configured on this node: add the source to its config, then replay", source, stream))
		return
	}
	if format == sluice.ParseSyslog {
		err := sluice.ReadRecords(p.Body, func(rec []byte, truncated bool) error {
			if truncated {
				bad(sluice.BadSizeViolation, fmt.Sprintf("syslog message longer than the limit; the payload holds its first %d bytes", len(rec)), string(rec), "")
				return nil
			}
			e.syslogMessage(res, p, rec, bad)
			return nil
		})
		if err != nil {
			bad(sluice.BadCollectorPayloadFormat, fmt.Sprintf("source %s: %v", source, err), string(p.Body), "")
		}
		return
	}
	parser, err := e.parser(format, p.Headers[sluice.HeaderPattern])
	if err != nil {
		whole(sluice.BadEnrichmentFailure, fmt.Sprintf("source %s: %v", source, err))
		return
	}
	if format == "" {
		format = "plain"
	}
	received := appendTime(nil, p.ReceivedAt)
	err = sluice.ReadRecords(p.Body, func(rec []byte, truncated bool) error {
		if truncated {
			bad(sluice.BadSizeViolation, fmt.Sprintf("source %s: record longer than the limit; the payload holds its first %d bytes", source, len(rec)), string(rec), "")
			return nil
		}
		r, err := parser.Parse(rec)
		if err != nil {
			bad(sluice.BadCollectorPayloadFormat, fmt.Sprintf("source %s (%s): %v", source, p.Path, err), string(rec), "")
			return nil
		}
		line := appendLogRecord(make([]byte, 0, 2*len(rec)+256), &r, received, p, source, format)
		if stream == sluice.StreamLogs {
			res.logs = append(res.logs, line)
		} else {
			if res.streams == nil {
				res.streams = map[string][][]byte{}
			}
			res.streams[stream] = append(res.streams[stream], line)
		}
		res.logged++
		return nil
	})
	if err != nil {
		bad(sluice.BadCollectorPayloadFormat, fmt.Sprintf("source %s: %v", source, err), string(p.Body), "")
	}
}

// appendLogRecord writes one row of a logs table (LogColumns), timestamp
// first: the archiver partitions by it.
func appendLogRecord(buf []byte, r *logparse.Record, received []byte, p *sluice.Payload, source, format string) []byte {
	buf = append(buf, `{"timestamp":"`...)
	if r.Time.IsZero() {
		buf = append(buf, received...)
	} else {
		buf = appendTime(buf, r.Time)
	}
	buf = append(buf, `","received_at":"`...)
	buf = append(buf, received...)
	buf = append(buf, '"')
	str := func(name, v string) {
		if v == "" {
			return
		}
		buf = append(buf, ',', '"')
		buf = append(buf, name...)
		buf = append(buf, '"', ':')
		buf = jsonseq.AppendString(buf, v)
	}
	str("host", r.Host)
	app := r.App
	if app == "" {
		app = source
	}
	str("app", app)
	str("message", r.Message)
	str("format", format)
	str("source", p.Path)
	str("ip", r.IP)
	if len(r.Fields) > 0 {
		buf = append(buf, `,"fields":`...)
		buf = r.AppendFieldsJSON(buf)
	}
	return append(buf, "}\n"...)
}
