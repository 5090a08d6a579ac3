package pipeline

import (
	"bytes"
	"os"
	"testing"
)

// benchRows are rows of a logs table as enrich writes them from the demo's
// web-shop events (benchmarks/pipeline's workload): ~800 bytes, a nested
// "fields" object of 13-20 members.
func benchRows(tb testing.TB) [][]byte {
	data, err := os.ReadFile("testdata/rows.ndjson")
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func benchDecode(b *testing.B, decode func([]byte) (Event, error)) {
	rows := benchRows(b)
	var n int
	for _, r := range rows {
		n += len(r)
	}
	b.SetBytes(int64(n / len(rows)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := decode(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, encode func([]byte, Event) ([]byte, error)) {
	rows := benchRows(b)
	evs := make([]Event, len(rows))
	var n int
	for i, r := range rows {
		ev, err := decodeReference(r)
		if err != nil {
			b.Fatal(err)
		}
		evs[i] = ev
		n += len(r)
	}
	b.SetBytes(int64(n / len(rows)))
	b.ReportAllocs()
	var buf []byte
	for i := 0; b.Loop(); i++ {
		var err error
		if buf, err = encode(buf[:0], evs[i%len(evs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B)          { benchDecode(b, decode) }
func BenchmarkDecodeReference(b *testing.B) { benchDecode(b, decodeReference) }
func BenchmarkEncode(b *testing.B)          { benchEncode(b, encode) }
func BenchmarkEncodeReference(b *testing.B) { benchEncode(b, encodeReference) }
