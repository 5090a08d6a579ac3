package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/lake"
)

func lakeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lake",
		Short: "Look into the Parquet lake: list its files, verify it",
	}
	cmd.AddCommand(lakeLsCmd(), lakeVerifyCmd())
	return cmd
}

// openLake opens the lake the config and flags name; it must exist.
func openLake(c *common) (*lake.Dir, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	dir := cfg.LakeDir()
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no lake at %s (lake.url, --lake, --data): %w", dir, err)
	}
	return lake.NewDir(dir)
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
				fmt.Fprintln(w, "file\tseqs\trows\tbytes\t")
			}
			for _, t := range tables {
				ti, err := lake.Inspect(ctx, d, t)
				if err != nil {
					return err
				}
				var rows, size int64
				for _, f := range ti.Files {
					rows += f.Rows
					size += f.Bytes
					if len(args) > 0 {
						fmt.Fprintf(w, "%s\t%d-%d\t%d\t%d\t\n", f.Key, f.First, f.Last, f.Rows, f.Bytes)
					}
				}
				if len(args) == 0 {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t\n", t, len(ti.Files), rows, size, ti.Committed)
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
					rows += f.Rows
				}
			}
			if len(problems) > 0 {
				return errors.New(fmt.Sprint(len(problems), " problem(s) in ", len(infos), " tables"))
			}
			fmt.Fprintf(out, "ok: %d tables, %d files, %d rows\n", len(infos), files, rows)
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}
