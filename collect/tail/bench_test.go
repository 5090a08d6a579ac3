package tail

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTail measures raw log from a file to the bus (stored, fsynced),
// with ~200-byte nginx lines.
func BenchmarkTail(b *testing.B) {
	bs := newBus(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "access.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	buf := make([]byte, 0, 1<<20)
	for i := range b.N {
		buf = fmt.Appendf(buf, `192.0.2.%d - - [01/May/2024:10:00:%02d +0000] "GET /products/%08d?ref=home HTTP/1.1" 200 %d "https://shop.example.com/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"`+"\n", i%256, i%60, i, 1000+i%9000)
		if len(buf) > 1<<20-512 || i == b.N-1 {
			n, _ := f.Write(buf)
			size += int64(n)
			buf = buf[:0]
		}
	}
	f.Close()
	b.SetBytes(size / int64(b.N))
	o := options(bs, dir, path)
	o.PollInterval = 5 * time.Millisecond
	statePath := filepath.Join(o.StateDir, o.Source+".json")
	b.ResetTimer()
	start(b, o)
	for {
		if st, err := os.ReadFile(statePath); err == nil && len(st) > 0 && containsOffset(st, size) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.StopTimer()
}

func containsOffset(state []byte, size int64) bool {
	return bytes.Contains(state, fmt.Appendf(nil, `"offset":%d`, size))
}
