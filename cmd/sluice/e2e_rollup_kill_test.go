package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// rollupKillConfig is the realtime example's rollup with a sum, and small
// lake files so that kills land in flushes too.
const rollupKillConfig = `
lake: {flush_interval: 500ms}
rollups:
  pageviews_1m:
    from: events
    filter: 'event == "page_view"'
    granularity: 1m
    dimensions: [country, page_url]
    metrics:
      views: count()
      visitors: distinct(user_id)
      revenue: sum(price)
`

// Issue 7, acceptance 4: kill -9 and restart under load, five times: under
// heavy load, soon after a restart (before the new process saved
// anything), while the rollup saves its state, right after it did, and
// right after it refreshed its table, seconds after a save. No
// acknowledged event is missing from the rollup or counted twice in it:
// the lake holds every acknowledged event once, and the rollup equals
// exact SQL over the lake in every bucket and group; the query API agrees
// with the table. Some clients retry each batch until it is acknowledged
// (so the retries must be deduplicated), others give up a batch that
// failed (so events stored but not acknowledged are counted too, the same
// in the lake and in the rollup).
func TestRollupKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: kills and restarts sluice five times under load")
	}
	data := t.TempDir()
	collector, api := freePort(t), freePort(t)
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	os.WriteFile(cfgFile, []byte(rollupKillConfig), 0o644)
	p := startSluice(t, data, collector, api, "-c", cfgFile)
	defer func() { p.cmd.Process.Kill() }() // after a failure; a no-op once stopped

	// Eight one-minute buckets that end before now: within the rollup's
	// retention, whatever the date.
	base := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	load := startPageviews(collector, base, 4, 100)
	defer load.abort()
	views := func() int64 { // the table's views, -1 before it exists
		rows, err := apiSQL(p, "SELECT coalesce(sum(views), 0)::BIGINT FROM pageviews_1m")
		if err != nil {
			return -1
		}
		return int64(rows[0][0].(float64))
	}
	waitUntil(t, 60*time.Second, "the rollup table to count views", func() bool { return views() > 0 }, p)

	restart := func(why string) {
		t.Helper()
		p.kill(t)
		t.Logf("kill -9 %s: %d events acknowledged so far", why, load.ackedCount())
		for _, l := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(l, "rollup") {
				t.Logf("  its log: %s", l)
			}
		}
		p = startSluice(t, data, collector, api, "-c", cfgFile)
	}

	// Under heavy load, between two saves of the rollup's state (every 5 s).
	time.Sleep(6500 * time.Millisecond)
	restart("under load")

	// Before the new process saved anything: it is still where the first
	// one's last save left it, or reading the stream again from there.
	time.Sleep(500 * time.Millisecond)
	restart("0.5 s after a restart")

	// In the middle of a save, and right after one: the rollup's state is
	// in <data>/rollups/<name> (docs/rollups.md, "Delivery"), its manifest written to a
	// temporary file that is then renamed into place.
	rollups := filepath.Join(data, "rollups", "pageviews_1m") // manifest.json and segments
	time.Sleep(time.Second)
	if f := waitForWrite(rollups, true, 20*time.Second); f != "" {
		restart("while the rollup saved its state (" + f + " written)")
	} else {
		restart("20 s after the restart (no temporary file seen in " + rollups + ")")
	}
	time.Sleep(time.Second)
	if f := waitForWrite(rollups, false, 20*time.Second); f != "" {
		restart("right after the rollup saved its state (" + f + " written)")
	} else {
		restart("20 s after the restart (no save seen in " + rollups + ")")
	}

	// Right after a refresh of the table, seconds after a save: the table
	// holds counts that the saved state does not, and the restarted rollup
	// must not add them twice.
	waitForWrite(rollups, false, 20*time.Second)
	time.Sleep(3 * time.Second)
	before := views()
	waitUntil(t, 30*time.Second, "the rollup table to be refreshed", func() bool { return views() > before }, p)
	restart("right after the table was refreshed, 3 s after a save")

	time.Sleep(3 * time.Second)
	acked, err := load.stop()
	if err != nil {
		t.Fatalf("a client got an answer it must not retry: %v", err)
	}
	if acked == 0 {
		t.Fatal("no events were acknowledged")
	}
	done := time.Now()

	// The lake holds every acknowledged event, once.
	var found []int64 // acknowledged found, rows, event ids, sent but not acknowledged found, rows never sent
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		found = ints(sql(t, data, load.lakeQuery())[0])
		if found[0] == acked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events acknowledged; the lake holds %d of them\n%s", acked, found[0], p.metrics())
		}
	}
	rows, ids, unackedIn, strays := found[1], found[2], found[3], found[4]
	if rows != ids || strays != 0 {
		t.Errorf("the lake holds %d rows of %d event ids, %d of which were never sent", rows, ids, strays)
	}
	t.Logf("%d events acknowledged, %d sent but not acknowledged; the lake holds the acknowledged ones and %d of the others, %d rows in all, %s after the last",
		acked, load.unackedCount(), unackedIn, rows, time.Since(done).Round(100*time.Millisecond))

	// The rollup equals exact SQL over the lake in every bucket and group:
	// views and revenue exactly, visitors (HyperLogLog) within 2 %.
	// Each event once, even if the lake held one twice.
	const diff = `WITH lake AS (
		SELECT time_bucket(INTERVAL 1 minute, event_time) AS time, coalesce(country, '') AS country, coalesce(page_url, '') AS page_url,
		       count(*) AS views, count(DISTINCT user_id) AS visitors, sum(price) AS revenue
		FROM (SELECT DISTINCT ON (event_id) * FROM events) WHERE event = 'page_view' GROUP BY ALL)
	SELECT strftime(time, '%H:%M'), country, page_url, r.views, lake.views, r.revenue, lake.revenue, r.visitors, lake.visitors
	FROM pageviews_1m r FULL JOIN lake USING (time, country, page_url)
	WHERE r.views IS DISTINCT FROM lake.views OR r.revenue IS DISTINCT FROM lake.revenue
	   OR r.visitors IS NULL OR lake.visitors IS NULL OR abs(r.visitors - lake.visitors) > 0.02 * lake.visitors
	ORDER BY ALL`
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		bad := sql(t, data, diff)
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, r := range bad[:min(len(bad), 20)] {
				fmt.Fprintf(&b, "\n%v", r)
			}
			t.Fatalf("%d groups of the rollup differ from the lake (minute, country, page_url, views rollup/lake, revenue rollup/lake, visitors rollup/lake):%s",
				len(bad), b.String())
		}
	}
	sums := ints(sql(t, data, `SELECT count(DISTINCT time), count(*), sum(views)::BIGINT FROM pageviews_1m`)[0])
	lakeViews := ints(sql(t, data, "SELECT count(*) FROM events WHERE event = 'page_view'")[0])[0]
	t.Logf("pageviews_1m: %d buckets, %d groups, %d views (the lake: %d page views); equal to the lake in every group, %s after the last event",
		sums[0], sums[1], sums[2], lakeViews, time.Since(done).Round(100*time.Millisecond))
	if sums[0] != 8 {
		t.Errorf("the rollup has %d buckets, want 8: the events' times did not spread", sums[0])
	}

	// The query API merges the rows of each minute as the table holds them,
	// and the sketches of each minute's groups into its visitors.
	type bucket struct{ views, revenue, visitors float64 }
	want := map[int64]bucket{}
	for _, r := range sql(t, data, `SELECT epoch(r.time)::BIGINT, sum(views)::BIGINT, sum(revenue), any_value(l.visitors)
		FROM pageviews_1m r JOIN (SELECT time_bucket(INTERVAL 1 minute, event_time) AS time, count(DISTINCT user_id) AS visitors
		                          FROM events WHERE event = 'page_view' GROUP BY ALL) l USING (time)
		GROUP BY ALL`) {
		want[int64(r[0].(float64))] = bucket{r[1].(float64), r[2].(float64), r[3].(float64)}
	}
	series := rollupAPI(t, p, `{"queryType":"timeseries","granularity":"1m"}`)
	if len(series) != len(want) {
		t.Errorf("timeseries: %d minutes, the table %d", len(series), len(want))
	}
	for _, s := range series {
		w := want[s.Time.Unix()]
		got := bucket{s.Event["views"], s.Event["revenue"], s.Event["visitors"]}
		if got.views != w.views || got.revenue != w.revenue || abs(got.visitors-w.visitors) > 0.02*w.visitors {
			t.Errorf("timeseries at %s: views %v, revenue %v, visitors %v; the table %v, %v, the lake %v visitors",
				s.Time.Format("15:04"), got.views, got.revenue, got.visitors, w.views, w.revenue, w.visitors)
		}
	}
	all := rollupAPI(t, p, `{"queryType":"timeseries"}`)
	lakeAll := sql(t, data, "SELECT count(*), sum(price), count(DISTINCT user_id) FROM events WHERE event = 'page_view'")[0]
	if len(all) != 1 || all[0].Event["views"] != lakeAll[0] || all[0].Event["revenue"] != lakeAll[1] ||
		abs(all[0].Event["visitors"]-lakeAll[2].(float64)) > 0.02*lakeAll[2].(float64) {
		t.Errorf("timeseries over all: %v; the lake: views %v, revenue %v, visitors %v", all, lakeAll[0], lakeAll[1], lakeAll[2])
	} else {
		t.Logf("query API, all: %.0f views, %.0f visitors (the lake: %.0f distinct users)", all[0].Event["views"], all[0].Event["visitors"], lakeAll[2])
	}
	p.stop(t)
}

// waitForWrite waits until a file in dir is written, one named *.tmp or
// one not, and returns its name ("" if none was within d).
func waitForWrite(dir string, tmp bool, d time.Duration) string {
	mtimes := func() map[string]time.Time {
		m := map[string]time.Time{}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".tmp") == tmp {
				m[e.Name()] = info.ModTime()
			}
		}
		return m
	}
	was := mtimes()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		for name, at := range mtimes() {
			if !at.Equal(was[name]) {
				return name
			}
		}
	}
	return ""
}

// apiSQL runs q through the server's SQL API: quicker than `sluice sql`,
// for deciding when to kill.
func apiSQL(p *proc, q string) ([][]any, error) {
	body, _ := json.Marshal(map[string]string{"sql": q})
	resp, err := http.Post(p.api+"/api/v1/sql", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var res struct {
		Rows [][]any `json:"rows"`
	}
	return res.Rows, json.Unmarshal(b, &res)
}

// rollupPoint is an entry of a timeseries answer of the rollup query API.
type rollupPoint struct {
	Time  time.Time          `json:"timestamp"`
	Event map[string]float64 `json:"event"`
}

func rollupAPI(t *testing.T, p *proc, query string) []rollupPoint {
	t.Helper()
	resp, err := http.Post(p.api+"/api/v1/rollups/pageviews_1m/query", "application/json", strings.NewReader(query))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var res []rollupPoint
	if err := json.Unmarshal(b, &res); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("rollup query %s: %d %v\n%s", query, resp.StatusCode, err, b)
	}
	return res
}

func abs(x float64) float64 { return max(x, -x) }

// ints are the numbers of a result row (JSON numbers: float64) as int64.
func ints(row []any) []int64 {
	out := make([]int64, len(row))
	for i, v := range row {
		f, _ := v.(float64)
		out[i] = int64(f)
	}
	return out
}

// pageviews are clients posting batches of events (4 in 5 page views),
// each up to 40 a second. Even clients retry a batch until it is
// acknowledged; odd ones give a batch up when it fails, and go on with
// the next. Event ids are rk-<client>-<batch>-<i>.
type pageviews struct {
	size, clients int
	base          time.Time // the first of eight minutes
	stopping      chan struct{}
	cancel        context.CancelFunc
	wg            sync.WaitGroup

	mu      sync.Mutex
	sent    []int    // batches each client sent, acknowledged or not
	unacked [][2]int // client, batch: sent, not acknowledged
	acked   int64    // events
	failed  error    // the first answer that must not be retried
}

func startPageviews(collector string, base time.Time, clients, size int) *pageviews {
	ctx, cancel := context.WithCancel(context.Background())
	pv := &pageviews{size: size, clients: clients, base: base, stopping: make(chan struct{}), cancel: cancel, sent: make([]int, clients)}
	for c := range clients {
		pv.wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for b := 0; ; b++ {
				select {
				case <-pv.stopping:
					return
				case <-ctx.Done():
					return
				case <-time.After(25 * time.Millisecond):
				}
				body := pv.batch(c, b)
				pv.mu.Lock()
				pv.sent[c] = b + 1
				pv.mu.Unlock()
				for {
					ok, err := postCtx(ctx, client, "http://"+collector, body)
					if ctx.Err() != nil {
						return
					}
					pv.mu.Lock()
					if err != nil && !isConnErr(err) && pv.failed == nil {
						pv.failed = err
					}
					if ok {
						pv.acked += int64(size)
					} else if c%2 == 1 {
						pv.unacked = append(pv.unacked, [2]int{c, b})
					}
					pv.mu.Unlock()
					if ok || (err != nil && !isConnErr(err)) {
						break
					}
					time.Sleep(50 * time.Millisecond)
					if c%2 == 1 {
						break
					}
				}
				if pv.failedYet() {
					return
				}
			}
		})
	}
	return pv
}

// batch is client c's batch b: NDJSON page views and clicks spread over
// eight minutes from base, four countries, five pages and 10,007 users, with
// prices whose sums are exact in a float64.
func (pv *pageviews) batch(c, b int) []byte {
	var buf bytes.Buffer
	for i := range pv.size {
		k := (b*pv.size+i)*pv.clients + c
		event := "page_view"
		if k%5 == 0 {
			event = "click"
		}
		at := pv.base.Add(time.Duration(k*7%8)*time.Minute + time.Duration(k%60000)*time.Millisecond)
		fmt.Fprintf(&buf, `{"event_id":"rk-%d-%d-%d","event":%q,"event_time":%q,"country":%q,"page_url":"https://shop.example/p/%d","user_id":"u%d","price":%d.25}`+"\n",
			c, b, i, event, at.Format(time.RFC3339Nano), []string{"DE", "FR", "US", "BR"}[k/3%4], k%5, k*31%10007, k%200)
	}
	return buf.Bytes()
}

func (pv *pageviews) failedYet() bool {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return pv.failed != nil
}

func (pv *pageviews) ackedCount() int64 {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return pv.acked
}

func (pv *pageviews) unackedCount() int {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return len(pv.unacked) * pv.size
}

// stop ends the clients once their batches in hand are answered (or, for
// the retrying ones, acknowledged), and returns how many events were
// acknowledged, or the first answer that must not be retried.
func (pv *pageviews) stop() (int64, error) {
	close(pv.stopping)
	pv.wg.Wait()
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return pv.acked, pv.failed
}

// abort ends the clients at once: after a failure.
func (pv *pageviews) abort() {
	pv.cancel()
	pv.wg.Wait()
}

// lakeQuery counts, in the lake: the acknowledged events (distinct ids),
// all rows, all event ids, the events sent but not acknowledged, and the
// rows of ids never sent.
func (pv *pageviews) lakeQuery() string {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	var sent, unacked []string
	for c, n := range pv.sent {
		sent = append(sent, fmt.Sprintf("(%d, %d)", c, n))
	}
	unacked = append(unacked, "(-1, -1)") // VALUES needs a row
	for _, u := range pv.unacked {
		unacked = append(unacked, fmt.Sprintf("(%d, %d)", u[0], u[1]))
	}
	return fmt.Sprintf(`WITH sent(c, n) AS (VALUES %s), unacked(c, b) AS (VALUES %s),
	ids AS (SELECT event_id, split_part(event_id, '-', 2)::INT AS c, split_part(event_id, '-', 3)::INT AS b FROM events),
	known AS (SELECT ids.*, EXISTS (SELECT 1 FROM unacked u WHERE u.c = ids.c AND u.b = ids.b) AS unacked
	          FROM ids JOIN sent ON ids.c = sent.c AND ids.b < sent.n)
	SELECT (SELECT count(DISTINCT event_id) FROM known WHERE NOT unacked),
	       (SELECT count(*) FROM events), (SELECT count(DISTINCT event_id) FROM events),
	       (SELECT count(DISTINCT event_id) FROM known WHERE unacked),
	       (SELECT count(*) FROM ids) - (SELECT count(*) FROM known)`, strings.Join(sent, ", "), strings.Join(unacked, ", "))
}
