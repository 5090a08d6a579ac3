package lake

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/internal/s3test"
)

// Archive throughput: events already on the bus (as enrich writes them,
// 1,000 a message, over three hours of event time) into committed Parquet
// files, to a local directory and to S3 (versitygw on 127.0.0.1).
//
//	go test ./lake -run '^$' -bench Archive -benchtime 3x
func BenchmarkArchiveDir(b *testing.B) {
	benchArchive(b, func(b *testing.B) Store { return newDir(b) })
}

func BenchmarkArchiveS3(b *testing.B) {
	srv := s3test.Start(b)
	srv.Setenv(b)
	n := 0
	benchArchive(b, func(b *testing.B) Store {
		n++
		s, err := Open(context.Background(), srv.LakeURL(srv.Bucket, fmt.Sprintf("run%d", n)))
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}

const benchEvents = 300_000

func benchArchive(b *testing.B, store func(*testing.B) Store) {
	var lines []string
	for i := range 1000 {
		lines = append(lines, event(fmt.Sprintf("%08x-1111-4222-8333-%012d", i, i), fmt.Sprintf("2026-11-25T%02d:%02d:%02d.%06dZ", 9+i%3, i%60, i%60, i),
			fmt.Sprintf(`,"user_id":"u%d","page_url":"https://shop.example/p/%d?utm_source=news","useragent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36","browser":"Chrome 120","os":"Linux","device_class":"desktop","price":%d.5,"qty":%d,"note":"item %d"`, i%97, i%500, i%90, i%5, i%13)))
	}
	msg := []byte(strings.Join(lines, ""))
	var bytesOut int64
	b.ResetTimer()
	b.StopTimer()
	for range b.N {
		bs := openBus(b, bus.StreamConfig{})
		saveSchemaB(b, bs)
		for range benchEvents / 1000 {
			if _, err := bs.Publish(context.Background(), "events", msg, ""); err != nil {
				b.Fatal(err)
			}
		}
		s := store(b)
		done := make(chan struct{})
		a := NewArchiver(ArchiverOptions{Bus: bs, Store: s, Table: EventsTable, FlushInterval: time.Minute, MaxRows: benchEvents / 3, Logger: quiet})
		ctx, cancel := context.WithCancel(context.Background())
		b.StartTimer()
		go func() { a.Run(ctx); close(done) }()
		for a.Committed() < benchEvents/1000 {
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
		files, _ := Files(context.Background(), s, "events")
		if len(files) == 0 {
			b.Fatal("no files")
		}
		bytesOut += int64(len(msg)) * benchEvents / 1000
	}
	b.ReportMetric(float64(b.N*benchEvents)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytesOut)/1e6/b.Elapsed().Seconds(), "MB/s_of_rows")
}

func saveSchemaB(b *testing.B, bs *bus.Bus) {
	ctx := context.Background()
	_, rev, err := bs.Schema(ctx, "events")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bs.SaveSchema(ctx, sluice.Schema{Table: "events", Columns: ownColumns}, rev); err != nil {
		b.Fatal(err)
	}
}
