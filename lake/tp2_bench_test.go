package lake_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bench"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/enrich"
	"github.com/sluice-data/sluice/lake"
)

// The archiver's work on Snowplow events as it reads them from `events`: the
// load generator's tp2 corpus (`sluice bench --protocol tp2`) enriched by
// enrich with its default enrichments, as in issue 3's pipeline benchmark.
//
//	go test ./lake -run '^$' -bench TP2 -count 5

const tp2Events = 50_000

var tp2 struct {
	once   sync.Once
	msgs   [][]byte // messages of `events`
	events int      // in msgs
	schema sluice.Schema
	err    error
}

// tp2Messages enriches at least tp2Events events once per test binary and
// returns their messages, how many events they hold and the schema record.
func tp2Messages(b *testing.B) ([][]byte, int, sluice.Schema) {
	tp2.once.Do(func() { tp2.msgs, tp2.events, tp2.schema, tp2.err = enrichTP2(b.TempDir()) })
	if tp2.err != nil {
		b.Fatal(tp2.err)
	}
	return tp2.msgs, tp2.events, tp2.schema
}

var quiet = slog.New(slog.DiscardHandler)

func openBus(dir string) (*bus.Bus, error) {
	streams := map[string]bus.StreamConfig{}
	for _, s := range sluice.Streams {
		streams[s] = bus.StreamConfig{}
	}
	return bus.Open(context.Background(), bus.Options{Dir: dir, Streams: streams, Logger: quiet})
}

func enrichTP2(dir string) ([][]byte, int, sluice.Schema, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := openBus(dir)
	if err != nil {
		return nil, 0, sluice.Schema{}, err
	}
	defer b.Close()
	corpus, err := bench.NewCorpus(1000, 1, "tp2")
	if err != nil {
		return nil, 0, sluice.Schema{}, err
	}
	at := time.Now().UTC()
	for range tp2Events / 1000 {
		var ps []sluice.Payload
		for range 20 {
			ps = append(ps, sluice.Payload{ReceivedAt: at, Collector: "http", Path: corpus.Path(), IP: "127.0.0.1", UserAgent: "bench",
				Headers: map[string]string{sluice.HeaderNetworkUserID: "5c1b3e1e-0000-4000-8000-000000000001"}, Body: corpus.Body(50)})
		}
		frame, err := sluice.EncodeFrame(ps)
		if err != nil {
			return nil, 0, sluice.Schema{}, err
		}
		if _, err := b.Publish(ctx, sluice.StreamRaw, frame, ""); err != nil {
			return nil, 0, sluice.Schema{}, err
		}
	}
	e := enrich.New(enrich.Options{Bus: b, Enrichments: []enrich.Enrichment{enrich.NewUserAgent(), enrich.Campaign{}, enrich.Referrer{}}, Logger: quiet})
	go e.Run(ctx)
	r, err := b.ReadFrom(ctx, sluice.StreamEvents, 1)
	if err != nil {
		return nil, 0, sluice.Schema{}, err
	}
	defer r.Close()
	var msgs [][]byte
	n := 0
	for n < tp2Events {
		select {
		case m := <-r.C():
			msgs = append(msgs, m.Data)
			n += bytes.Count(m.Data, []byte("\n"))
		case <-time.After(time.Minute):
			return nil, 0, sluice.Schema{}, context.DeadlineExceeded
		}
	}
	schema, _, err := b.Schema(ctx, "events")
	return msgs, n, schema, err
}

// BenchmarkEncodeTP2 is a flush's CPU work without I/O: the columns of a
// file and its Parquet encoding, for one partition of tp2Events rows.
func BenchmarkEncodeTP2(b *testing.B) {
	msgs, _, schema := tp2Messages(b)
	var lines [][]byte
	size := 0
	for _, m := range msgs {
		for l := range bytes.Lines(m) {
			lines = append(lines, l)
			size += len(l)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	out := 0
	c0 := cpuTime()
	for b.Loop() {
		data, err := lake.EncodeFile(lake.EventsTable, schema, lines)
		if err != nil {
			b.Fatal(err)
		}
		out = len(data)
	}
	b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/1e3/float64(b.N*len(lines)), "cpu-µs/event")
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(out)/float64(len(lines)), "file_B/event")
}

// BenchmarkArchiveTP2 is the archiver from the bus to committed files in a
// directory, in one flush (the last message fills MaxRows); cpu-µs/event is
// the whole process's (the embedded bus's delivery included), which is what
// the archiver takes from the pipeline.
func BenchmarkArchiveTP2(b *testing.B) {
	msgs, events, schema := tp2Messages(b)
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		bs, err := openBus(filepath.Join(dir, "bus"))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		if _, err := bs.SaveSchema(ctx, schema, 0); err != nil {
			b.Fatal(err)
		}
		var last uint64
		for _, m := range msgs {
			if last, err = bs.Publish(ctx, sluice.StreamEvents, m, ""); err != nil {
				b.Fatal(err)
			}
		}
		store, err := lake.NewDir(filepath.Join(dir, "lake"))
		if err != nil {
			b.Fatal(err)
		}
		a := lake.NewArchiver(lake.ArchiverOptions{Bus: bs, Store: store, Table: lake.EventsTable, FlushInterval: time.Minute, MaxRows: events, Logger: quiet})
		done := make(chan error, 1)
		c0 := cpuTime()
		b.StartTimer()
		go func() { done <- a.Run(ctx) }()
		for a.Committed() < last {
			time.Sleep(2 * time.Millisecond)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		bs.Close()
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*events), "cpu-µs/event")
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var u syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
