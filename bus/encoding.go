package bus

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bus stores large messages compressed. Every byte stored is fsynced,
// and on a virtual machine a synchronous write costs the CPU about 2 ns a
// byte (docs/benchmarks.md): S2 encodes at about 0.25 ns a byte and shrinks
// collector frames and event batches 5-10 times. Readers see the original
// bytes; only tools that read the streams from NATS directly see the header.
const (
	// EncodingHeader names how a message's data is encoded; absent, the
	// data is stored as it was published.
	EncodingHeader = "Sluice-Encoding"
	// EncodingS2 is S2's block format (github.com/klauspost/compress/s2).
	EncodingS2 = "s2"
	// compressMin is the smallest message the bus compresses: below it the
	// header costs about what compression would save.
	compressMin = 4 << 10
	// maxDecoded bounds what one stored message may expand to.
	maxDecoded = 1 << 30
)

// newMsg makes the message to publish: data compressed when that saves at
// least an eighth, and msgID (if any) for JetStream's duplicate window.
func newMsg(subj string, data []byte, msgID string) *nats.Msg {
	m := &nats.Msg{Subject: subj, Data: data}
	if msgID != "" {
		m.Header = nats.Header{jetstream.MsgIDHeader: []string{msgID}}
	}
	if len(data) < compressMin {
		return m
	}
	if c := s2.Encode(nil, data); len(c) <= len(data)-len(data)/8 {
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		m.Header[EncodingHeader] = []string{EncodingS2}
		m.Data = c
	}
	return m
}

// errEncoding reports a stored message that can't be decoded.
var errEncoding = errors.New("bus: message can't be decoded")

// decode returns a stored message's original bytes.
func decode(h nats.Header, data []byte) ([]byte, error) {
	enc := ""
	if h != nil {
		enc = h.Get(EncodingHeader)
	}
	switch enc {
	case "":
		return data, nil
	case EncodingS2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errEncoding, EncodingS2, err)
		}
		if n > maxDecoded {
			return nil, fmt.Errorf("%w: %s: it would expand to %d bytes (at most %d)", errEncoding, EncodingS2, n, maxDecoded)
		}
		out, err := s2.Decode(make([]byte, n), data)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errEncoding, EncodingS2, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown %s %q (written by a newer sluice?)", errEncoding, EncodingHeader, enc)
	}
}

// decoded is decode for a message being delivered: one that can't be
// decoded is delivered as stored, so that the stage sees it (enrich keeps
// it as a bad row) instead of losing it, and the failure is logged.
func (b *Bus) decoded(stream string, seq uint64, h nats.Header, data []byte) []byte {
	out, err := decode(h, data)
	if err != nil {
		b.log.Error("bus: delivering a message as stored", "stream", stream, "seq", seq, "err", err)
		return data
	}
	return out
}
