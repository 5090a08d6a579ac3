package sluice

import (
	"encoding/binary"
	"fmt"
)

// ContentTypeRecords marks a payload whose body is a sequence of records
// (AppendRecord), e.g. the lines of a tailed file; its headers say how
// enrich parses them.
const ContentTypeRecords = "application/x-sluice-records"

// maxRecordLen bounds a record's length prefix so that len<<1 cannot overflow.
const maxRecordLen = 1<<62 - 1

// AppendRecord appends one record to a records body: uvarint(len<<1 |
// truncated) then the bytes. truncated says the source record was longer and
// was cut.
func AppendRecord(dst, rec []byte, truncated bool) []byte {
	h := uint64(len(rec)) << 1
	if truncated {
		h |= 1
	}
	dst = binary.AppendUvarint(dst, h)
	return append(dst, rec...)
}

// ReadRecords calls fn for each record of a records body, in order; rec
// aliases body. It stops at the first error from fn and returns it; a
// malformed body yields an error wrapping ErrBadFrame (records before the
// damage have been passed to fn).
func ReadRecords(body []byte, fn func(rec []byte, truncated bool) error) error {
	for off := 0; off < len(body); {
		h, k := binary.Uvarint(body[off:])
		if k <= 0 {
			return fmt.Errorf("%w: record length at byte %d", ErrBadFrame, off)
		}
		n := h >> 1
		if n > maxRecordLen || n > uint64(len(body)-off-k) {
			return fmt.Errorf("%w: record at byte %d claims %d bytes, %d left", ErrBadFrame, off, n, len(body)-off-k)
		}
		start := off + k
		end := start + int(n)
		if err := fn(body[start:end:end], h&1 == 1); err != nil {
			return err
		}
		off = end
	}
	return nil
}
