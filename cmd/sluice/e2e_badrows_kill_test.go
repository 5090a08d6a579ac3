package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-data/sluice/demo"
)

// Issue 5: a poison event goes to bad once, also when sluice is killed
// between writing a batch's bad rows and acknowledging its input (the batch
// is processed again after the restart). Every purchase fails the pipeline's
// step; after three kill -9s under traffic, bad holds one row per purchase
// in the lake, and the rest of the events flowed to the output stream.
func TestPipelineBadRowsOnceAfterKillNine(t *testing.T) {
	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	cfg := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(`pipelines:
  poison:
    from: events
    steps:
      - set: {n: 'event == "purchase" ? int(event) : 0'}
    to: {lake: poisoned}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSluice(t, data, collector, api, "-c", cfg)
	finish := startDemo(t, collector, demo.Options{History: 2 * time.Hour, HistoryEventsPerHour: 100000, Rate: 500, Seed: 7})
	began := time.Now()
	for _, at := range []time.Duration{2 * time.Second, 6 * time.Second, 11 * time.Second} {
		time.Sleep(time.Until(began.Add(at)))
		p.kill(t)
		time.Sleep(200 * time.Millisecond)
		p = startSluice(t, data, collector, api, "-c", cfg)
	}
	time.Sleep(time.Until(began.Add(20 * time.Second)))
	r := finish()
	waitSQL(t, data, "SELECT count(*), count(DISTINCT event_id) FROM events", fmt.Sprintf("[[%d %d]]", r.Sent, r.Sent))
	purchases := sql(t, data, "SELECT count(*) FROM events WHERE event = 'purchase'")[0][0]
	others := sql(t, data, "SELECT count(*) FROM events WHERE event <> 'purchase'")[0][0]
	t.Logf("demo sent %d events: %v purchases, %v others", r.Sent, purchases, others)
	if n, _ := purchases.(float64); n < 100 {
		t.Fatalf("only %v purchases: the test covers too little", purchases)
	}
	waitSQL(t, data, `SELECT count(*), count(DISTINCT json_extract_string(payload, '$.event_id')) FROM bad
		WHERE type = 'pipeline_failure' AND path = 'pipeline poison steps[0]'`, fmt.Sprintf("[[%v %v]]", purchases, purchases))
	waitSQL(t, data, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'poisoned'", "[[1]]")
	waitSQL(t, data, "SELECT count(*), count(DISTINCT event_id) FROM poisoned", fmt.Sprintf("[[%v %v]]", others, others))
	p.stop(t)
}
