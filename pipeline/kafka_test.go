package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-data/sluice"
	"github.com/sluice-data/sluice/bus"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// kafkaCluster starts kfake, an in-process Kafka that speaks the real
// protocol on 127.0.0.1, with topics of the given partitions.
func kafkaCluster(t *testing.T, topics map[string]int32) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	for name, n := range topics {
		opts = append(opts, kfake.SeedTopics(n, name))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func testBus(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.Open(t.Context(), bus.Options{Dir: t.TempDir(), Logger: testLogger(t),
		Streams: map[string]bus.StreamConfig{sluice.StreamBad: {Retention: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startPipeline runs a pipeline from YAML (one pipeline named p) until the
// returned stop is called; stop waits for Run to end, as sluice's shutdown
// does. adjust changes the options first.
func startPipeline(t *testing.T, b *bus.Bus, yamlText string, adjust ...func(*pipeline.Options)) (stop func()) {
	t.Helper()
	c, err := config.Parse("sluice.yaml", []byte("pipelines:\n  p:\n"+yamlText))
	if err != nil {
		t.Fatal(err)
	}
	o := pipeline.Options{Name: "p", Config: c.Pipelines["p"], Bus: b, Logger: testLogger(t), MaxBatch: 3}
	for _, f := range adjust {
		f(&o)
	}
	p, err := pipeline.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func produce(t *testing.T, addr string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func record(topic, key, value string, headers ...string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Value: []byte(value)}
	if key != "" {
		r.Key = []byte(key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headers[i], Value: []byte(headers[i+1])})
	}
	return r
}

// readTopic reads a topic from its start (not as a group) until it has
// want records, and then a moment more to catch any extra.
func readTopic(t *testing.T, addr, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(20 * time.Second)
	settle := time.Time{}
	for {
		wait := time.Until(deadline)
		if !settle.IsZero() {
			wait = time.Until(settle)
		}
		if wait <= 0 {
			break
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		out = append(out, fs.Records()...)
		if len(out) >= want && settle.IsZero() {
			settle = time.Now().Add(700 * time.Millisecond)
		}
	}
	if len(out) < want {
		t.Fatalf("%s: %d records, want %d: %s", topic, len(out), want, describe(out))
	}
	return out
}

// describe is records as "key|h=v,…|value", sorted.
func describe(recs []*kgo.Record) string {
	var lines []string
	for _, r := range recs {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		lines = append(lines, fmt.Sprintf("%s|%s|%s", r.Key, strings.Join(hs, ","), r.Value))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// badRows reads the bad stream until it has want rows.
func badRows(t *testing.T, b *bus.Bus, want int) []sluice.BadRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r, err := b.ReadFrom(ctx, sluice.StreamBad, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []sluice.BadRow
	for len(out) < want {
		select {
		case m := <-r.C():
			for line := range strings.Lines(string(m.Data)) {
				var row sluice.BadRow
				if err := json.Unmarshal([]byte(line), &row); err != nil {
					t.Fatal(err)
				}
				out = append(out, row)
			}
		case <-ctx.Done():
			t.Fatalf("%d bad rows, want %d: %+v", len(out), want, out)
		}
	}
	return out
}

// A pipeline reads a topic through its consumer group, filters and sets,
// and writes another topic with each record's key and headers; a record
// that is not JSON is a bad row and the rest flows. Stopped and started
// again, it goes on from the committed offsets: nothing twice, nothing lost.
func TestKafkaInputAndOutput(t *testing.T) {
	addr := kafkaCluster(t, map[string]int32{"orders": 2, "purchases": 2, "by_user": 1})
	b := testBus(t)
	yamlText := fmt.Sprintf(`    from: kafka://%[1]s/orders
    steps:
      - filter: 'event == "purchase"'
      - set: {total: 'price * qty', channel: '_headers?.channel ?? "none"'}
    to:
      - {kafka: 'kafka://%[1]s/purchases'}
      - {kafka: 'kafka://%[1]s/by_user', key: user}
`, addr)
	produce(t, addr,
		record("orders", "o1", `{"id":1,"event":"purchase","user":"ann","price":2.5,"qty":2}`, "channel", "web", "trace", "t1"),
		record("orders", "o2", `{"id":2,"event":"view","user":"bob"}`, "channel", "app"),
		record("orders", "o3", `not json`, "channel", "web"),
		// Two events in one record (NDJSON): both keep its key and headers.
		record("orders", "o4", "{\"id\":4,\"event\":\"purchase\",\"user\":\"bob\",\"price\":10,\"qty\":1}\n{\"id\":5,\"event\":\"purchase\",\"user\":\"cy\",\"price\":1,\"qty\":3}\n"),
		record("orders", "", `{"id":6,"event":"purchase","user":"dee","price":4,"qty":1}`, "channel", "app"),
	)
	stop := startPipeline(t, b, yamlText)

	got := describe(readTopic(t, addr, "purchases", 4))
	want := strings.Join([]string{
		`o1|channel=web,trace=t1|{"channel":"web","event":"purchase","id":1,"price":2.5,"qty":2,"total":5,"user":"ann"}`,
		`o4||{"channel":"none","event":"purchase","id":4,"price":10,"qty":1,"total":10,"user":"bob"}`,
		`o4||{"channel":"none","event":"purchase","id":5,"price":1,"qty":3,"total":3,"user":"cy"}`,
		`|channel=app|{"channel":"app","event":"purchase","id":6,"price":4,"qty":1,"total":4,"user":"dee"}`,
	}, "\n")
	if got != want {
		t.Errorf("purchases:\n%s\nwant\n%s", got, want)
	}
	// key: user makes the record key the user field's value.
	var keys []string
	for _, r := range readTopic(t, addr, "by_user", 4) {
		keys = append(keys, string(r.Key))
	}
	slices.Sort(keys)
	if fmt.Sprint(keys) != "[ann bob cy dee]" {
		t.Errorf("by_user keys: %v", keys)
	}
	bad := badRows(t, b, 1)
	if bad[0].Type != pipeline.BadPipelineFailure || bad[0].Payload != "not json" || !strings.Contains(bad[0].Message, "on kafka:orders/") {
		t.Errorf("bad row: %+v", bad[0])
	}

	// Stop; more records arrive meanwhile; start again.
	stop()
	produce(t, addr,
		record("orders", "o7", `{"id":7,"event":"purchase","user":"ann","price":1,"qty":1}`),
		record("orders", "o8", `{"id":8,"event":"purchase","user":"eve","price":3,"qty":1}`),
	)
	startPipeline(t, b, yamlText)
	recs := readTopic(t, addr, "purchases", 6)
	ids := map[float64]int{}
	for _, r := range recs {
		var v struct{ ID float64 }
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		ids[v.ID]++
	}
	if fmt.Sprint(ids) != "map[1:1 4:1 5:1 6:1 7:1 8:1]" {
		t.Errorf("after the restart, purchases by id: %v\n%s", ids, describe(recs))
	}
	badRows(t, b, 1) // still the one
}

// A window over a topic is exactly-once across a restart: the offsets
// committed are those of the first record an open window depends on, so the
// open window is rebuilt whole, and the closed one is not emitted again.
func TestKafkaWindowRestart(t *testing.T) {
	addr := kafkaCluster(t, map[string]int32{"clicks": 1, "per_minute": 1})
	b := testBus(t)
	yamlText := fmt.Sprintf(`    from: kafka://%[1]s/clicks?group=minutes
    steps:
      - window: {type: tumbling, size: 1m, aggregates: {n: count()}}
    to: {kafka: 'kafka://%[1]s/per_minute'}
`, addr)
	click := func(at string) *kgo.Record {
		return record("clicks", "", fmt.Sprintf(`{"event_time":"2026-11-25T10:%sZ"}`, at))
	}
	produce(t, addr, click("00:05"), click("00:10"), click("00:50"), click("01:10"), click("01:20"))
	stop := startPipeline(t, b, yamlText)
	if got := describe(readTopic(t, addr, "per_minute", 1)); !strings.Contains(got, `"n":3`) {
		t.Fatalf("first window: %s", got)
	}
	stop()
	produce(t, addr, click("01:30"), click("02:01"))
	startPipeline(t, b, yamlText)
	got := describe(readTopic(t, addr, "per_minute", 2))
	want := `||{"n":3,"window_start":"2026-11-25T10:00:00.000000Z"}` + "\n" + `||{"n":3,"window_start":"2026-11-25T10:01:00.000000Z"}`
	if got != want {
		t.Errorf("windows:\n%s\nwant\n%s", got, want)
	}
}

// The acceptance test with a real Kafka client: kcat produces records with
// keys and headers, the pipeline transforms them, and kcat reads the output
// topic back with keys and headers intact.
func TestKafkaWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("SLUICE_INTEGRATION") == "1" {
			t.Fatal("kcat is not installed (apt-get install kcat) and SLUICE_INTEGRATION=1")
		}
		t.Skip("kcat is not installed (apt-get install kcat); SLUICE_INTEGRATION=1 makes this a failure")
	}
	addr := kafkaCluster(t, map[string]int32{"in": 3, "out": 3})
	b := testBus(t)
	run := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), kcat, append([]string{"-b", addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("u1:{\"user\":\"u1\",\"amount\":3}\nu2:{\"user\":\"u2\",\"amount\":-1}\nu3:{\"user\":\"u3\",\"amount\":7}\n",
		"-P", "-t", "in", "-K:", "-H", "source=shop", "-H", "trace=abc")
	run("u4:{\"user\":\"u4\",\"amount\":1}\n", "-P", "-t", "in", "-K:", "-H", "source=app")
	startPipeline(t, b, fmt.Sprintf(`    from: kafka://%[1]s/in
    steps:
      - filter: 'amount > 0'
      - set: {cents: 'amount * 100'}
    to: {kafka: 'kafka://%[1]s/out'}
`, addr))
	var lines []string
	deadline := time.Now().Add(20 * time.Second)
	for len(lines) < 3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		out := run("", "-C", "-t", "out", "-e", "-q", "-o", "beginning", "-f", "%t|%k|%h|%s\n")
		lines = nil
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, "out|") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
	}
	slices.Sort(lines)
	want := []string{
		`out|u1|source=shop,trace=abc|{"amount":3,"cents":300,"user":"u1"}`,
		`out|u3|source=shop,trace=abc|{"amount":7,"cents":700,"user":"u3"}`,
		`out|u4|source=app|{"amount":1,"cents":100,"user":"u4"}`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("kcat read from out:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}
