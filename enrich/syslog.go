package enrich

import (
	"encoding/json"
	"fmt"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/auto"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
	"github.com/sluice-data/sluice"
)

// syslogParser tells RFC 5424 from RFC 3164 per message. RFC 3164 carries no
// year and no zone: the current year and UTC are assumed.
func newSyslogParser() syslog.Machine {
	return auto.NewMachine(auto.WithRFC3164Options(
		rfc3164.WithYear(rfc3164.CurrentYear{}),
		rfc3164.WithTimezone(time.UTC),
	))
}

// logRow is one row of the logs table, in LogColumns order (timestamp first:
// the archiver finds the partition time there).
type logRow struct {
	Timestamp  string          `json:"timestamp"`
	ReceivedAt string          `json:"received_at"`
	Host       *string         `json:"host"`
	App        *string         `json:"app"`
	ProcID     *string         `json:"procid"`
	MsgID      *string         `json:"msgid"`
	Facility   *uint8          `json:"facility"`
	Severity   *uint8          `json:"severity"`
	Message    *string         `json:"message"`
	SD         json.RawMessage `json:"sd"`
	Format     string          `json:"format"`
	Source     string          `json:"source"`
	IP         string          `json:"ip"`
	Fields     json.RawMessage `json:"fields"` // parsed fields of a tailed record; null for syslog
}

// enrichSyslog parses a payload of one syslog message into a row of `logs`:
// what listeners stored before they framed messages as records (see
// enrichRecords), still read from the bus and in bad rows being replayed.
func (e *Enricher) enrichSyslog(res *result, p *sluice.Payload, bad func(typ, msg, payload, eventID string)) {
	if n := p.Headers["Truncated"]; n != "" {
		bad(sluice.BadSizeViolation, fmt.Sprintf("syslog message longer than %s bytes; the payload holds its beginning", n), string(p.Body), "")
		return
	}
	e.syslogMessage(res, p, p.Body, bad)
}

// syslogMessage parses one message of payload p.
func (e *Enricher) syslogMessage(res *result, p *sluice.Payload, msg []byte, bad func(typ, msg, payload, eventID string)) {
	if e.syslog == nil {
		e.syslog = newSyslogParser()
	}
	m, err := e.syslog.Parse(msg)
	if err != nil || m == nil || !m.Valid() {
		reason := "not a valid RFC 5424 or RFC 3164 message"
		if err != nil {
			reason = err.Error()
		}
		bad(sluice.BadTrackerProtocol, "syslog message could not be parsed: "+reason, string(msg), "")
		return
	}
	row := logRow{
		ReceivedAt: p.ReceivedAt.UTC().Format(TimeLayout),
		Source:     p.Path,
		IP:         p.IP,
		SD:         json.RawMessage("null"),
	}
	var base *syslog.Base
	switch sm := m.(type) {
	case *rfc5424.SyslogMessage:
		base = &sm.Base
		row.Format = "rfc5424"
		if sm.StructuredData != nil && len(*sm.StructuredData) > 0 {
			if b, err := json.Marshal(*sm.StructuredData); err == nil {
				row.SD = b
			}
		}
	case *rfc3164.SyslogMessage:
		base = &sm.Base
		row.Format = "rfc3164"
	default:
		bad(sluice.BadTrackerProtocol, fmt.Sprintf("syslog message of an unsupported kind %T", m), string(msg), "")
		return
	}
	ts := p.ReceivedAt
	if base.Timestamp != nil && !base.Timestamp.IsZero() {
		ts = *base.Timestamp
	}
	row.Timestamp = ts.UTC().Format(TimeLayout)
	row.Host, row.App, row.ProcID, row.MsgID = base.Hostname, base.Appname, base.ProcID, base.MsgID
	row.Facility, row.Severity, row.Message = base.Facility, base.Severity, base.Message
	line, err := json.Marshal(row)
	if err != nil {
		bad(sluice.BadEnrichmentFailure, "syslog row: "+err.Error(), string(msg), "")
		return
	}
	res.logs = append(res.logs, append(line, '\n'))
	res.logged++
}
