package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/node"
)

func lakeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lake",
		Short: "Look into the Parquet lake: list its files, verify it",
	}
	cmd.AddCommand(lakeLsCmd(), lakeVerifyCmd(), lakeGCCmd(), lakeCompactCmd())
	return cmd
}

// openLake opens the lake the config and flags name; it must exist.
func openLake(c *common) (lake.Store, error) {
	_, d, err := loadLake(c)
	return d, err
}

func loadLake(c *common) (*config.Config, lake.Store, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	if !cfg.LakeIsRemote() {
		// Opening a directory creates it; a mistyped path must not.
		if _, err := os.Stat(cfg.LakeDir()); err != nil {
			return nil, nil, fmt.Errorf("no lake at %s (lake.url, --lake, --data): %w", cfg.LakeDir(), err)
		}
	}
	s, err := lake.Open(context.Background(), cfg.LakeURL())
	return cfg, s, err
}

func lakeGCCmd() *cobra.Command {
	var c common
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete the partitions lake.retention no longer keeps (a running sluice does this hourly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, d, err := loadLake(&c)
			if err != nil {
				return err
			}
			if len(cfg.Lake.Retention) == 0 {
				return errors.New("lake.retention keeps every table forever: set it per table, e.g. retention: {events: 400d}")
			}
			out := cmd.OutOrStdout()
			now := time.Now()
			if dryRun {
				for _, table := range slices.Sorted(maps.Keys(cfg.Lake.Retention)) {
					keys, err := lake.Expired(cmd.Context(), d, table, cfg.Lake.Retention[table].D(), now)
					if err != nil {
						return err
					}
					for _, k := range keys {
						fmt.Fprintln(out, "would delete", k)
					}
				}
				return nil
			}
			n, err := node.Expire(cmd.Context(), cfg, d, now)
			fmt.Fprintf(out, "deleted %d expired files\n", n)
			return err
		},
	}
	c.register(cmd, false)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted")
	return cmd
}

func lakeLsCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "ls [TABLE...]",
		Short: "List the lake's tables, or the files of the named tables, with rows and bytes",
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := openLake(&c)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			tables := args
			if len(tables) == 0 {
				if tables, err = lake.Tables(ctx, d); err != nil {
					return err
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', tabwriter.AlignRight)
			if len(args) == 0 {
				fmt.Fprintln(w, "table\tfiles\trows\tbytes\tcommitted seq\t")
			} else {
				fmt.Fprintln(w, "file\tseqs\trows\tbytes\tlive\t")
			}
			for _, t := range tables {
				ti, err := lake.Inspect(ctx, d, t)
				if err != nil {
					return err
				}
				var rows, size int64
				live := 0
				for _, f := range ti.Files {
					if f.Live {
						live++
						rows += f.Rows
						size += f.Bytes
					}
					if len(args) > 0 {
						state := "yes"
						if !f.Live {
							state = "no" // beyond the commit, or replaced by a compaction (or not yet swapped in)
						}
						fmt.Fprintf(w, "%s\t%d-%d\t%d\t%d\t%s\t\n", f.Key, f.First, f.Last, f.Rows, f.Bytes, state)
					}
				}
				if len(args) == 0 {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t\n", t, live, rows, size, ti.Committed)
					continue
				}
				if err := w.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\n%s: %d live files (of %d), %d rows, committed through sequence %d; columns:\n", t, live, len(ti.Files), rows, ti.Committed)
				for _, col := range ti.Columns {
					fmt.Fprintf(cmd.OutOrStdout(), "  %-32s %s\n", col.Name, col.Type)
				}
			}
			return w.Flush()
		},
	}
	c.register(cmd, false)
	return cmd
}

func lakeVerifyCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the lake: committed files exist, every file is readable Parquet, no overlapping or uncommitted ranges",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := openLake(&c)
			if err != nil {
				return err
			}
			infos, problems, err := lake.Verify(cmd.Context(), d)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, p := range problems {
				fmt.Fprintln(out, p)
			}
			files, rows := 0, int64(0)
			for _, ti := range infos {
				files += len(ti.Files)
				for _, f := range ti.Files {
					if f.Live {
						rows += f.Rows
					}
				}
			}
			if len(problems) > 0 {
				return errors.New(fmt.Sprint(len(problems), " problem(s) in ", len(infos), " tables"))
			}
			fmt.Fprintf(out, "ok: %d tables, %d files, %d rows in the live files\n", len(infos), files, rows)
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}
