package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/lake"
	"github.com/sluice-data/sluice/node"
)

func lakeCompactCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "compact",
		Short: "Merge the small files of closed partitions now (a running sluice does this every lake.compaction.interval)",
		Long: `Merge the small files of every closed partition (lake.compaction.after past
its hour) into files of about lake.compaction.target_bytes, sorted by time,
and swap them in atomically.

With a sluice server running on the data dir, the server does it (its
queries keep seeing every row exactly once; the replaced files are deleted
after lake.compaction.grace). Without one, the replaced files are deleted
at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cfg, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			var r lake.Report
			if client != nil {
				if err := client.Compact(ctx, &r); err != nil {
					return err
				}
			} else {
				_, store, err := loadLake(&c)
				if err != nil {
					return err
				}
				cfg.Lake.Compaction.Grace = -1 // no server, no reader to wait for
				comp := node.NewCompactor(cfg, store, node.Tables(cfg), nil)
				if r, err = comp.Compact(ctx, time.Now()); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "compacted %d partitions: %d files merged into %d (%d rows); %d earlier compactions settled\n",
				r.Partitions, r.Inputs, r.Outputs, r.Rows, r.Finished)
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}
