package lake

import (
	"fmt"
	"testing"

	"github.com/sluice-data/sluice"
)

func benchLines(n int) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"event_id":"id-%d","event_time":"2026-11-25T10:%02d:00.000000Z","received_at":"2026-11-25T10:00:00.123456Z","collector":"http","event":"page_view","user_id":"u%d","page_url":"https://shop.example/p/%d","ip":"127.0.0.1","useragent":"Mozilla/5.0 (X11; Linux x86_64)","price":%d.5,"country":"DE","quantity":%d}`+"\n", i, i%60, i%1000, i%200, i%100, i%5)
	}
	return lines
}

func benchCols() []sluice.Column {
	return append(append([]sluice.Column{}, sluice.EventColumns...),
		sluice.Column{Name: "country", Type: sluice.TypeVarchar},
		sluice.Column{Name: "price", Type: sluice.TypeDouble},
		sluice.Column{Name: "quantity", Type: sluice.TypeBigint})
}

func BenchmarkEncodeParquet(b *testing.B) {
	lines := benchLines(200000)
	cols := benchCols()
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeParquet("events", cols, lines, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "rows/s")
}
