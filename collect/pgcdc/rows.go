package pgcdc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// Row messages (Insert, Update, Delete) are most of the stream, so they are
// read here without copying: a tuple's values alias the message, which
// stays valid until the next message is received. pglogrepl reads the
// others.

// tuple is one row image of a row message.
type tuple struct {
	kinds []byte   // per column: n(ull), u(nchanged TOAST), t(ext), b(inary)
	vals  [][]byte // the values of t and b columns
}

// rowMessage is a decoded Insert, Update or Delete.
type rowMessage struct {
	rel      uint32
	oldKind  byte // 0, K(ey) or O(ld row)
	old, new tuple
	hasOld   bool
	hasNew   bool
}

var errShort = errors.New("message too short")

// decodeRow decodes an Insert ('I'), Update ('U') or Delete ('D') message
// (its first byte is the type) into m, reusing m's slices.
func decodeRow(data []byte, m *rowMessage) error {
	if len(data) < 6 {
		return errShort
	}
	typ := data[0]
	m.rel = binary.BigEndian.Uint32(data[1:5])
	m.oldKind, m.hasOld, m.hasNew = 0, false, false
	rest := data[5:]
	var err error
	if typ != 'I' && len(rest) > 0 && (rest[0] == 'K' || rest[0] == 'O') {
		m.oldKind, m.hasOld = rest[0], true
		if rest, err = m.old.decode(rest[1:]); err != nil {
			return fmt.Errorf("old row: %w", err)
		}
	}
	if typ == 'D' {
		if !m.hasOld {
			return errors.New("delete without the old row's key")
		}
		return nil
	}
	if len(rest) == 0 || rest[0] != 'N' {
		return errors.New("no new row")
	}
	m.hasNew = true
	if _, err = m.new.decode(rest[1:]); err != nil {
		return fmt.Errorf("new row: %w", err)
	}
	return nil
}

// decode reads a TupleData and returns what follows it.
func (t *tuple) decode(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	t.kinds, t.vals = t.kinds[:0], t.vals[:0]
	for range n {
		if len(b) < 1 {
			return nil, errShort
		}
		kind := b[0]
		b = b[1:]
		var v []byte
		switch kind {
		case pglogrepl.TupleDataTypeNull, pglogrepl.TupleDataTypeToast:
		case pglogrepl.TupleDataTypeText, pglogrepl.TupleDataTypeBinary:
			if len(b) < 4 {
				return nil, errShort
			}
			l := int(binary.BigEndian.Uint32(b))
			b = b[4:]
			if l < 0 || l > len(b) {
				return nil, errShort
			}
			v, b = b[:l:l], b[l:]
		default:
			return nil, fmt.Errorf("unknown column kind %q", kind)
		}
		t.kinds = append(t.kinds, kind)
		t.vals = append(t.vals, v)
	}
	return b, nil
}
