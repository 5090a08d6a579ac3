package tail

import (
	"bytes"
	"regexp"

	"github.com/sluice-data/sluice"
)

// What a file's stored offset is in the middle of, after a record was cut
// at MaxRecord.
const (
	skipNone   = 0
	skipLine   = 1 // the rest of a line whose start was stored truncated
	skipRecord = 2 // continuation lines of a multi-line record stored truncated
)

// cutter splits file bytes into records.
type cutter struct {
	multi   *regexp.Regexp // starts a record; nil: one line, one record
	max     int
	scratch []byte
}

// cut appends the complete records at the start of buf (a file's bytes from
// its stored offset) to body, and returns how many bytes of buf they (and
// any skipped bytes) took, and what the offset is then in the middle of.
//
// end: nothing will be added to the file (drained): a last line without
// "\n" is a record. flush: the file is quiet, so the last multi-line record
// is complete. full: buf was cut by the window, not by the end of the file;
// when no record fits in it, the record is longer than the window (which is
// longer than max) and is stored truncated.
func (c *cutter) cut(body, buf []byte, skip int, end, flush, full bool) (_ []byte, consumed, _ int) {
	emit := func(rec []byte, truncated bool) {
		if len(rec) > c.max {
			rec, truncated = rec[:c.max], true
		}
		body = sluice.AppendRecord(body, rec, truncated)
	}
	i, rec := 0, -1 // rec: where the pending multi-line record starts
	trunc := false
	for i < len(buf) {
		rest := buf[i:]
		nl := bytes.IndexByte(rest, '\n')
		var line []byte
		adv := nl + 1
		if nl >= 0 {
			line = rest[:nl]
		} else {
			if !end {
				if skip == skipLine {
					i, consumed = len(buf), len(buf)
				}
				break
			}
			line, adv = rest, len(rest)
		}
		if skip == skipLine {
			i += adv
			consumed = i
			skip = skipNone
			if c.multi != nil {
				skip = skipRecord
			}
			continue
		}
		line = trimCR(line)
		if c.multi == nil {
			emit(line, false)
			i += adv
			consumed = i
			continue
		}
		start := c.multi.Match(line)
		if skip == skipRecord {
			if !start {
				i += adv
				consumed = i
				continue
			}
			skip = skipNone
		}
		switch {
		case start || rec < 0:
			if rec >= 0 {
				emit(c.scratch, trunc)
				consumed = i
			}
			rec = i
			c.scratch = append(c.scratch[:0], line[:min(len(line), c.max)]...)
			trunc = len(line) > c.max
		case !trunc:
			if room := c.max - len(c.scratch); 1+len(line) <= room {
				c.scratch = append(append(c.scratch, '\n'), line...)
			} else {
				trunc = true
				if room > 0 {
					c.scratch = append(append(c.scratch, '\n'), line[:room-1]...)
				}
			}
		}
		i += adv
	}
	if rec >= 0 && (end || flush) {
		emit(c.scratch, trunc)
		consumed, rec = i, -1
	}
	if consumed == 0 && full && len(buf) > 0 {
		// One record fills the whole window: store its start, skip the rest.
		if rec == 0 && i > 0 {
			// Lines of a multi-line record, then a partial line.
			if room := c.max - len(c.scratch); room > 0 {
				c.scratch = append(c.scratch, '\n')
				c.scratch = append(c.scratch, buf[i:min(len(buf), i+room-1)]...)
			}
			emit(c.scratch, true)
			consumed, skip = len(buf), skipLine
		} else {
			if skip != skipRecord {
				emit(buf, true)
			}
			consumed, skip = len(buf), skipLine
		}
	}
	return body, consumed, skip
}

func trimCR(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return line[:n-1]
	}
	return line
}
