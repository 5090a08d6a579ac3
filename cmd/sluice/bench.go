package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/bench"
	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

func benchCmd() *cobra.Command {
	var c common
	var (
		target, api string
		clientsList string
		batchList   string
		duration    time.Duration
		lakeEvents  int64
		lakeClients int
		lakeRate    float64
		skipLake    bool
		skipIngest  bool
		protocol    string
		lakeBatch   int
		queryReps   int
		fresh       bench.FreshnessOptions
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test ingest (to the durable bus), ingest-to-lake and rollup freshness through the real HTTP collector",
		Long: `bench measures events/s and MB/s of HTTP ingest to the durable bus for each
combination of --clients and --batch, then events/s from ingest to rows
queryable in the lake. Without --target it starts sluice in this process on a
fresh temporary data dir (or --data), so the numbers include the whole server.

--freshness DURATION measures how soon an event is visible in a rollup: under
background web-shop traffic paced to --freshness-rate events/s, it sends a
marked page view every 100 ms and polls the rollup pageviews_1m through the
SQL API until each shows; it reports the spread from acknowledgement to
visible, and fails when a marker never shows. In-process, the config gets
pageviews_1m of examples/realtime/sluice.yaml unless it has a rollup of that
name; with --target, the server must run that rollup.

  sluice bench --skip-ingest --skip-lake --freshness 60s --freshness-rate 50000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			clients, err := intList(clientsList)
			if err != nil {
				return fmt.Errorf("--clients: %w", err)
			}
			batches, err := intList(batchList)
			if err != nil {
				return fmt.Errorf("--batch: %w", err)
			}
			collector, lakeDir := target, c.lake
			if collector == "" {
				cfg, err := benchConfig(&c)
				if err != nil {
					return err
				}
				if fresh.Duration > 0 {
					if err := bench.AddFreshnessRollup(cfg); err != nil {
						return err
					}
				}
				if c.dataDir == "" {
					// A temporary data dir holds gigabytes after a run.
					defer os.RemoveAll(cfg.DataDir)
				}
				n, err := node.Start(ctx, cfg, c.logger())
				if err != nil {
					return err
				}
				defer n.Stop()
				collector, api = n.CollectorURL(), n.APIURL()
				lakeDir = cfg.LakeDir()
				fmt.Fprintf(out, "sluice running in-process on %s (data %s)\n", collector, cfg.DataDir)
			}
			corpus, err := bench.NewCorpus(5000, 1, protocol)
			if err != nil {
				return err
			}
			if !skipIngest {
				fmt.Fprintf(out, "\nIngest to the durable bus (%s per cell)\n\n", duration)
				fmt.Fprintln(out, "| clients | batch | events/s | MB/s | requests/s | p50 | p99 |")
				fmt.Fprintln(out, "|--------:|------:|---------:|-----:|-----------:|----:|----:|")
				for _, b := range batches {
					for _, cl := range clients {
						r, err := bench.Ingest(ctx, collector, corpus, cl, b, duration)
						if err != nil {
							return fmt.Errorf("%d clients, batch %d: %w", cl, b, err)
						}
						fmt.Fprintf(out, "| %d | %d | %.0f | %.1f | %.0f | %s | %s |\n", cl, b, r.EventsPerSec(), r.MBPerSec(),
							float64(r.Requests)/r.Elapsed.Seconds(), r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
						// Let the pipeline drain before the next cell so cells don't
						// pay for each other's backlog.
						waitDrained(ctx, api)
					}
				}
			}
			if !skipLake && lakeEvents > 0 {
				if api == "" {
					return fmt.Errorf("the lake benchmark needs the API: pass --api with --target")
				}
				client := &server.Client{URL: api, Token: os.Getenv("SLUICE_TOKEN")}
				count := func(ctx context.Context) (int64, error) {
					res, err := client.SQL(ctx, "SELECT count(*) FROM events")
					if err != nil {
						return 0, err
					}
					n, err := res.Rows[0][0].(json.Number).Int64()
					return n, err
				}
				pace := "as fast as they are acknowledged"
				if lakeRate > 0 {
					pace = fmt.Sprintf("paced to %.0f events/s", lakeRate)
				}
				fmt.Fprintf(out, "\nIngest to rows in the lake: %d events, %d clients, batches of %d, %s\n\n", lakeEvents, lakeClients, lakeBatch, pace)
				r, err := bench.Lake(ctx, collector, corpus, lakeClients, lakeBatch, lakeEvents, lakeRate, count)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, "| t | acknowledged | in lake | lag (events) |")
				fmt.Fprintln(out, "|--:|-------------:|--------:|-------------:|")
				for _, s := range r.Samples {
					fmt.Fprintf(out, "| %s | %d | %d | %d |\n", s.At, s.Acked, s.Rows, s.LagEvents)
				}
				fmt.Fprintf(out, "\ningest: %.0f events/s over %s; lake: all %d rows queryable after %s (%.0f events/s end to end), %s after the last acknowledgement\n",
					r.IngestPerSec, r.IngestTime.Round(time.Millisecond), r.Events, r.LakeTime.Round(time.Millisecond), r.LakePerSec, r.CatchUp.Round(time.Millisecond))
			}
			if queryReps > 0 {
				if api == "" || lakeDir == "" {
					return fmt.Errorf("the query benchmark needs the API and the lake: pass --api and --lake with --target")
				}
				if err := benchQueries(ctx, out, api, lakeDir, queryReps); err != nil {
					return err
				}
			}
			if fresh.Duration > 0 {
				if api == "" {
					return fmt.Errorf("the freshness benchmark needs the API: pass --api with --target")
				}
				waitDrained(ctx, api)
				fresh.Collector = collector
				fresh.API = &server.Client{URL: api, Token: os.Getenv("SLUICE_TOKEN")}
				fmt.Fprintf(out, "\nRollup freshness: a marked page view every 100ms for %s, %d clients sending batches of %d in the background\n\n",
					fresh.Duration, fresh.Clients, fresh.Batch)
				r, err := bench.Freshness(ctx, fresh)
				r.WriteTable(out)
				if err != nil {
					return fmt.Errorf("freshness: %w", err)
				}
			}
			return nil
		},
	}
	c.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&target, "target", "", "collector URL of a running sluice (default: start one in-process)")
	f.StringVar(&api, "api", "", "API URL of the running sluice, with --target (for the lake and freshness benchmarks)")
	f.StringVar(&clientsList, "clients", "1,8,64", "concurrent clients, comma-separated")
	f.StringVar(&batchList, "batch", "1,100", "events per request, comma-separated")
	f.DurationVar(&duration, "duration", 10*time.Second, "how long each ingest cell runs")
	f.Int64Var(&lakeEvents, "lake-events", 1000000, "events for the ingest-to-lake run (0: skip)")
	f.IntVar(&lakeClients, "lake-clients", 8, "clients for the ingest-to-lake run")
	f.IntVar(&lakeBatch, "lake-batch", 100, "events per request in the ingest-to-lake run")
	f.IntVar(&queryReps, "queries", 0, "then time the analytical queries this many times each, through the SQL API and with DuckDB reading the lake directly (0: skip)")
	f.Float64Var(&lakeRate, "lake-rate", 0, "pace the ingest-to-lake run to this many events/s (0: full speed)")
	f.BoolVar(&skipLake, "skip-lake", false, "skip the ingest-to-lake run")
	f.BoolVar(&skipIngest, "skip-ingest", false, "skip the ingest matrix")
	f.DurationVar(&fresh.Duration, "freshness", 0, "measure rollup freshness for this long: marked page views, polled in pageviews_1m through the SQL API (0: skip)")
	f.Float64Var(&fresh.Rate, "freshness-rate", 50000, "background events/s during the freshness run (0: none)")
	f.IntVar(&fresh.Clients, "freshness-clients", 32, "background clients during the freshness run (each waits for its answer: enough of them to offer the rate while answers take tens of ms)")
	f.IntVar(&fresh.Batch, "freshness-batch", 100, "events per background request during the freshness run")
	f.StringVar(&protocol, "protocol", "json", "request format: json (POST /v1/events) or tp2 (Snowplow POST, 50 events a request by default)")
	return cmd
}

// benchQueries times the analytical queries through the API and directly.
func benchQueries(ctx context.Context, out io.Writer, api, lakeDir string, reps int) error {
	client := &server.Client{URL: api, Token: os.Getenv("SLUICE_TOKEN")}
	viaAPI := func(ctx context.Context, q string) (int, error) {
		res, err := client.SQL(ctx, q)
		if err != nil {
			return 0, err
		}
		return len(res.Rows), nil
	}
	db, direct, err := bench.DirectDuckDB(ctx, lakeDir)
	if err != nil {
		return err
	}
	defer db.Close()
	timings, err := bench.TimeQueries(ctx, bench.AnalyticalQueries(), viaAPI, direct, reps)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nAnalytical queries, median of %d (SQL API vs DuckDB reading the lake directly)\n\n", reps)
	fmt.Fprintln(out, "| query | rows | API | direct | overhead |")
	fmt.Fprintln(out, "|---|--:|--:|--:|--:|")
	var sa, sd time.Duration
	for _, t := range timings {
		sa += t.API
		sd += t.Direct
		fmt.Fprintf(out, "| %s | %d | %s | %s | %+.0f %% |\n", t.Title, t.Rows, t.API.Round(time.Millisecond), t.Direct.Round(time.Millisecond), 100*t.Overhead())
	}
	fmt.Fprintf(out, "| all | | %s | %s | %+.0f %% |\n", sa.Round(time.Millisecond), sd.Round(time.Millisecond), 100*(sa.Seconds()/sd.Seconds()-1))
	return nil
}

// benchConfig is the config for an in-process bench server: the usual file
// and flags, but a fresh temporary data dir unless --data is given.
func benchConfig(c *common) (*config.Config, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	if c.dataDir == "" {
		dir, err := os.MkdirTemp("", "sluice-bench-")
		if err != nil {
			return nil, err
		}
		cfg.ApplyOverrides(dir, "", "")
	}
	if c.collectorAddr == "" {
		cfg.HTTP.Collector = "127.0.0.1:0"
	}
	if c.apiAddr == "" {
		cfg.HTTP.API = "127.0.0.1:0"
	}
	return cfg, nil
}

// waitDrained waits until enrich, the archivers, the pipelines and the
// rollups have caught up (lag 0 on /metrics), at most a minute.
func waitDrained(ctx context.Context, api string) {
	if api == "" {
		return
	}
	// The gauges refresh every 2s: don't read one from before the cell ended.
	time.Sleep(2500 * time.Millisecond)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if lag, ok := server.Lag(ctx, api); ok && lag == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
