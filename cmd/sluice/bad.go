package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/node"
	"github.com/sluice-data/sluice/server"
)

func badCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bad",
		Short: "Work with bad rows (the bad table): replay them after a fix",
	}
	cmd.AddCommand(badReplayCmd())
	return cmd
}

func badReplayCmd() *cobra.Command {
	var c common
	var types []string
	var since, until string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "replay --type T --since WHEN",
		Short: "Hand bad rows back to enrich after a fix (a schema, a config change)",
		Long: `Replay hands the inputs of bad rows back to enrich, as they first came in.
Those that enrich can now turn into events become events; the others become
new bad rows. Replaying the same rows twice yields the same events (duplicates
are dropped within enrich.dedupe_window).

Rows are read from the bad stream, which keeps them for streams.bad.retention
(30 days by default). With a running server the replay goes through its API;
otherwise sluice opens the data dir itself and enrich picks the rows up at the
next start.

WHEN is a duration before now (90m, 24h, 7d), a date (2026-11-25, UTC) or an
RFC 3339 time.`,
		Example: `  sluice bad replay --type schema_violation --since 24h
  sluice bad replay --type tracker_protocol,enrichment_failure --since 2026-11-20 --until 2026-11-21 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(types) == 0 {
				return errors.New("say which failure types to replay: --type schema_violation (or several, comma-separated; --type all for every type)")
			}
			if len(types) == 1 && types[0] == "all" {
				types = nil
			}
			now := time.Now().UTC()
			if since == "" {
				return errors.New("say from when: --since 24h, --since 2026-11-25 or an RFC 3339 time")
			}
			req := server.ReplayRequest{Types: types, DryRun: dryRun}
			var err error
			if req.Since, err = parseWhen(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if until != "" {
				if req.Until, err = parseWhen(until, now); err != nil {
					return fmt.Errorf("--until: %w", err)
				}
			}
			ctx := cmd.Context()
			cfg, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			var res struct {
				Matched  json.Number            `json:"matched"`
				Replayed json.Number            `json:"replayed"`
				ByType   map[string]json.Number `json:"by_type"`
			}
			if client != nil {
				if err := client.Replay(ctx, req, &res); err != nil {
					return err
				}
			} else {
				r, err := node.Replay(ctx, cfg, req)
				if err != nil {
					return err
				}
				b, _ := json.Marshal(r)
				dec := json.NewDecoder(strings.NewReader(string(b)))
				dec.UseNumber()
				_ = dec.Decode(&res)
			}
			out := cmd.OutOrStdout()
			verb := "replayed"
			if dryRun {
				verb = "would replay (dry run)"
			}
			n := res.Replayed
			if dryRun {
				n = res.Matched
			}
			fmt.Fprintf(out, "%s bad rows matched, %s %s\n", res.Matched, verb, n)
			for t, n := range res.ByType {
				fmt.Fprintf(out, "  %-28s %s\n", t, n)
			}
			return nil
		},
	}
	c.register(cmd, false)
	cmd.Flags().StringSliceVar(&types, "type", nil, "failure types to replay (comma-separated), or all")
	cmd.Flags().StringVar(&since, "since", "", "replay rows that failed at or after this: 24h, 2026-11-25, or RFC 3339")
	cmd.Flags().StringVar(&until, "until", "", "and before this (default: now)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count the rows that would be replayed, replay nothing")
	return cmd
}

// parseWhen reads a point in time: a duration before now, a date, or RFC 3339.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := config.ParseDuration(s); err == nil {
		return now.Add(-d.D()), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration (24h, 7d), a date (2026-11-25) nor an RFC 3339 time", s)
}
