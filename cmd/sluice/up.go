package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/demo"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/warehouse"
)

func upCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run every configured role in one process; Ctrl-C drains and stops cleanly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			log := c.logger()
			n, err := node.Start(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			n.SetConfigLoader(c.load)
			log.Info("sluice is up", "ui", n.APIURL()+"/", "collector", n.CollectorURL(), "api", n.APIURL(), "data", cfg.DataDir)
			return waitAndStop(cmd.Context(), n, cmd.ErrOrStderr())
		},
	}
	c.register(cmd, true)
	return cmd
}

// waitAndStop runs until a signal or a stage failure, then drains. SIGHUP
// reloads the config file's pipelines (as POST /api/v1/reload does).
func waitAndStop(ctx context.Context, n *node.Node, w io.Writer) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w, "sluice: stopping (draining requests, flushing files)…")
			break wait
		case runErr = <-n.Errors():
			fmt.Fprintln(w, "sluice: a stage failed, stopping:", runErr)
			break wait
		case <-hup:
			rep, err := n.ReloadConfig(ctx)
			if err != nil {
				fmt.Fprintln(w, "sluice: reload refused, the running config stays:", err)
				continue
			}
			fmt.Fprintf(w, "sluice: reloaded: %+v\n", rep)
		}
	}
	if err := n.Stop(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

func demoCmd() *cobra.Command {
	var c common
	var o demo.Options
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run sluice with synthetic web-shop traffic sent through the real collector",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			load := withDemoModels(c.load)
			cfg, err := load()
			if err != nil {
				return err
			}
			if cfg.Semantic.Models == demoModels(cfg) {
				if err := demo.WriteModels(cfg.Semantic.Models); err != nil {
					return err
				}
			}
			if cfg.Dashboards.Dir == demoDashboards(cfg) {
				if err := demo.WriteDashboards(cfg.Dashboards.Dir); err != nil {
					return err
				}
			}
			n, err := node.Start(cmd.Context(), cfg, c.logger())
			if err != nil {
				return err
			}
			n.SetConfigLoader(load)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "\nSluice demo is running. Open the web UI:\n\n  %s/\n\n", n.APIURL())
			if cfg.Dashboards.Dir == demoDashboards(cfg) {
				fmt.Fprintf(out, "The web shop's dashboard:\n\n  %s/dashboards/webshop\n\n", n.APIURL())
			}
			fmt.Fprintf(out, "  collector  %s  (POST /v1/events)\n  API        %s  (POST /api/v1/sql, /metrics)\n  explores   %s/api/v1/explores  (models in %s)\n  data dir   %s\n\n",
				n.CollectorURL(), n.APIURL(), n.APIURL(), cfg.Semantic.Models, cfg.DataDir)
			fmt.Fprintf(out, "Sending %s of history, then %.0f events/s live. Try, in another terminal:\n\n", o.History, o.Rate)
			for _, q := range demo.Queries {
				fmt.Fprintf(out, "  # %s\n  %s sql --data %s %q\n\n", q.Title, selfCommand(), cfg.DataDir, oneLine(q.SQL))
			}
			o.CollectorURL = n.CollectorURL()
			o.Progress = cmd.ErrOrStderr()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				st, err := demo.Run(ctx, o)
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "demo traffic finished: %d events in %d batches\n", st.Sent, st.Batches)
				}
				done <- err
			}()
			var demoErr error
			select {
			case <-cmd.Context().Done():
			case demoErr = <-done:
				if demoErr == nil && o.Duration > 0 {
					// A bounded demo: let the lake catch up, then stop.
					time.Sleep(cfg.Lake.FlushInterval.D() + time.Second)
					cancel()
					return n.Stop()
				}
			}
			cancel()
			fmt.Fprintln(cmd.ErrOrStderr(), "sluice: stopping (draining requests, flushing files)…")
			if err := n.Stop(); err != nil {
				return err
			}
			if demoErr != nil && demoErr != context.Canceled {
				return fmt.Errorf("demo traffic: %w", demoErr)
			}
			return nil
		},
	}
	c.register(cmd, true)
	f := cmd.Flags()
	f.Float64Var(&o.Rate, "rate", 20, "live events per second")
	f.DurationVar(&o.History, "history", 72*time.Hour, "past traffic to send first (with past event times)")
	f.IntVar(&o.HistoryEventsPerHour, "history-per-hour", 1500, "average events per hour of history")
	f.IntVar(&o.BatchSize, "batch", 100, "events per request")
	f.Int64Var(&o.Seed, "seed", 0, "random seed (0: time-based)")
	f.DurationVar(&o.Duration, "duration", 0, "stop after this long of live traffic (0: until Ctrl-C)")
	return cmd
}

// withDemoModels makes a config without semantic models of its own serve
// the demo's web-shop model, which `sluice demo` writes into
// <data_dir>/models at start (edit them there and reload; the next start
// writes them afresh), and, without dashboards of its own either, the web
// shop's dashboard from <data_dir>/dashboards (its tiles need that model).
func withDemoModels(load func() (*config.Config, error)) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, err := load()
		if err == nil && cfg.Semantic.Models == "" {
			cfg.Semantic.Models = demoModels(cfg)
			if cfg.Dashboards.Dir == "" {
				cfg.Dashboards.Dir = demoDashboards(cfg)
			}
		}
		return cfg, err
	}
}

func demoModels(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "models") }

func demoDashboards(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "dashboards") }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// selfCommand is how the user can run this binary again: `go run` builds it
// in a temporary directory, where it will be gone.
func selfCommand() string {
	if strings.Contains(os.Args[0], "go-build") {
		return "go run ./cmd/sluice"
	}
	return "sluice"
}

func sqlCmd() *cobra.Command {
	var c common
	var format string
	cmd := &cobra.Command{
		Use:   `sql "SELECT …"`,
		Short: "Run a read-only query: through the running server for the data dir, else directly on it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			var res *warehouse.Result
			if client != nil {
				res, err = client.SQL(ctx, args[0])
			} else if cfg.WarehouseIsPostgres() {
				res, err = queryPostgres(ctx, cfg.Warehouse.URL, args[0])
			} else {
				res, err = queryDirect(ctx, cfg, args[0])
			}
			if err != nil {
				return err
			}
			return res.Format(cmd.OutOrStdout(), format)
		},
	}
	c.register(cmd, false)
	cmd.Flags().StringVar(&format, "format", "table", "output format: table, csv or json")
	return cmd
}

// queryPostgres runs q on the PostgreSQL warehouse as it was last loaded.
func queryPostgres(ctx context.Context, url, q string) (*warehouse.Result, error) {
	pg, err := warehouse.OpenPostgres(ctx, url, warehouse.PostgresOptions{})
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	return pg.Query(ctx, q, 0)
}

func queryDirect(ctx context.Context, cfg *config.Config, q string) (*warehouse.Result, error) {
	store, err := lake.Open(ctx, cfg.LakeURL())
	if err != nil {
		return nil, err
	}
	// A lake on S3 is read through the same local cache the server uses.
	wh, err := warehouse.OpenLake(ctx, filepath.Join(cfg.DataDir, "warehouse.duckdb"), store, cfg.LakeDir())
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	return wh.Query(ctx, q, 0)
}
