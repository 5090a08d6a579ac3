package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/rollup"
	"github.com/sluice-data/sluice/server"
)

func rollupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollup",
		Short: "Real-time rollups: count an interval again from the lake",
	}
	cmd.AddCommand(rollupRebuildCmd(), rollupLsCmd())
	return cmd
}

func rollupLsCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List the rollups, or one rollup's intervals with their grain and version",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			if client == nil {
				return fmt.Errorf("no sluice server runs on this data dir: rollups run inside it (start sluice up, or give --api-addr)")
			}
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				var all []rollup.Description
				if err := client.Get(ctx, "/api/v1/rollups", &all); err != nil {
					return err
				}
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tGRANULARITY\tDIMENSIONS\tMETRICS\tINTERVALS")
				for _, d := range all {
					var ms []string
					for _, m := range d.Metrics {
						ms = append(ms, m.Name)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\n", d.Name, d.Granularity, strings.Join(d.Dimensions, ","), strings.Join(ms, ","), len(d.Intervals))
				}
				return w.Flush()
			}
			var d rollup.Description
			if err := client.Get(ctx, "/api/v1/rollups/"+args[0], &d); err != nil {
				return err
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "START\tEND\tGRAIN\tVERSION\tBUCKETS\tROWS")
			for _, iv := range d.Intervals {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\n", iv.Start.Format(time.RFC3339), iv.End.Format(time.RFC3339), iv.Grain, iv.Version, iv.Buckets, iv.Rows)
			}
			return w.Flush()
		},
	}
	c.register(cmd, false)
	return cmd
}

func rollupRebuildCmd() *cobra.Command {
	var (
		c        common
		from, to string
	)
	cmd := &cobra.Command{
		Use:   "rebuild NAME --from TIME --to TIME",
		Short: "Count [from, to) of a rollup again from the lake, with its definition as it is now, and swap it in",
		Long: `Count the events of [from, to) again from the lake (and the stream after the
lake's committed position) with the rollup's current definition, and swap
the new buckets in at once: queries see the version before or the new one,
never a mix. Times are RFC 3339 or YYYY-MM-DD (midnight UTC). The running
server does it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			f, err := parseTime(from)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			t, err := parseTime(to)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			_, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			if client == nil {
				return fmt.Errorf("no sluice server runs on this data dir: rollups run inside it (start sluice up, or give --api-addr)")
			}
			var rep map[string]any
			if err := client.Post(ctx, "/api/v1/rollups/"+args[0]+"/rebuild", server.RebuildRequest{From: f, To: t}, &rep); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start (RFC 3339, or YYYY-MM-DD)")
	cmd.Flags().StringVar(&to, "to", "", "end, excluded")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	c.register(cmd, false)
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}
