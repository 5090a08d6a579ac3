package logparse

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

func benchParse(b *testing.B, format, pattern string, lines [][]byte) {
	p, err := New(format, pattern)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	b.SetBytes(n / int64(len(lines)))
	b.ReportAllocs()
	var buf []byte
	i := 0
	for b.Loop() {
		r, err := p.Parse(lines[i%len(lines)])
		if err != nil {
			b.Fatal(err)
		}
		buf = r.AppendFieldsJSON(buf[:0])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func sampleLines(format string) [][]byte {
	var out [][]byte
	for i := range 64 {
		var l string
		switch format {
		case "json":
			l = fmt.Sprintf(`{"ts":"2024-05-01T10:00:%02d.123Z","level":"info","msg":"request served","host":"web-%d","status":200,"duration_ms":%d.5,"path":"/api/v1/items/%d"}`, i%60, i%4, i*7, i)
		case "regex":
			l = fmt.Sprintf("2024-05-01 10:00:%02d [INFO] web-%d 10.0.0.%d request %d served", i%60, i%4, i, i)
		default:
			l = fmt.Sprintf(`192.0.2.%d - - [01/May/2024:10:00:%02d +0000] "GET /products/%d?ref=home HTTP/1.1" 200 %d "https://shop.example.com/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"`, i, i%60, i*13, 1000+i)
		}
		out = append(out, []byte(l))
	}
	return out
}

func BenchmarkNginx(b *testing.B) { benchParse(b, "nginx_combined", "", sampleLines("nginx")) }
func BenchmarkJSON(b *testing.B)  { benchParse(b, "json", "", sampleLines("json")) }

// BenchmarkJSONWebShop parses demo events: 64 of the first 6,400 that
// demo.NewGenerator(1).History writes for benchmarks/pipeline.
func BenchmarkJSONWebShop(b *testing.B) { benchParse(b, "json", "", webShopLines(b)) }

// webShopLines are demo events as benchmarks/pipeline writes them: 629 bytes
// and 13-20 members on average, strings (some with \u0026 escapes), floats
// and ints.
func webShopLines(tb testing.TB) [][]byte {
	data, err := os.ReadFile("testdata/webshop.ndjson")
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

func BenchmarkRegex(b *testing.B) {
	benchParse(b, "regex", `^(?P<time>\S+ \S+) \[(?P<level>\w+)\] (?P<host>\S+) (?P<ip>\S+) (?P<message>.*)$`, sampleLines("regex"))
}
