package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/jobs"
	"github.com/sluice-data/sluice/server"
)

func jobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, run, backfill and watch the batch jobs of the running server",
		Long: `The jobs of sluice.yaml (jobs.<name>) run inside the sluice server, which owns
the warehouse; these commands talk to the server running on the data dir (or
--api-addr).`,
	}
	cmd.AddCommand(jobsListCmd(), jobsRunCmd(), jobsBackfillCmd(), jobsStatusCmd(), jobsEnableCmd(), jobsCancelCmd())
	return cmd
}

// jobsClient is the running server, or an error saying to start one.
func jobsClient(ctx context.Context, c *common) (*server.Client, error) {
	_, client, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("no sluice server runs on this data dir: jobs run inside it (start `sluice up`, or give --api-addr)")
	}
	return client, nil
}

func jobsListCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The jobs: schedule, requirements, output, last run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := jobsClient(cmd.Context(), &c)
			if err != nil {
				return err
			}
			st, err := client.Jobs(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSCHEDULE\tPARAMS\tREQUIRES\tOUTPUT\tLAST RUN\tSTATE")
			for _, j := range st {
				last, state := "-", "-"
				if j.Last != nil {
					last = j.Last.Task().String()
					state = j.Last.State
				}
				if j.Disabled != "" {
					state = "DISABLED: " + j.Disabled
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, dash(j.Schedule), dash(strings.Join(j.Params, ", ")),
					dash(strings.Join(j.Requires, ", ")), j.Output, last, state)
			}
			return tw.Flush()
		},
	}
	c.register(cmd, false)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func jobsRunCmd() *cobra.Command {
	var (
		c      common
		params []string
		force  bool
		wait   bool
	)
	cmd := &cobra.Command{
		Use:   "run NAME [--param k=v]...",
		Short: "Run a job now (its missing requirements first); --wait follows it to the end",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client, err := jobsClient(ctx, &c)
			if err != nil {
				return err
			}
			p, err := jobs.ParseParams(params)
			if err != nil {
				return err
			}
			ans, err := client.SubmitRun(ctx, args[0], server.RunRequest{Params: p, Force: force})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if ans.Complete {
				fmt.Fprintln(out, ans.Message)
				return nil
			}
			fmt.Fprintf(out, "run %s: %s\n", ans.Run.ID, ans.Run.Task())
			if !wait {
				return nil
			}
			return waitRun(ctx, client, ans.Run.ID, out)
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "a parameter, name=value (repeat for more)")
	cmd.Flags().BoolVar(&force, "force", false, "run even if the output exists")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to end and print its attempts")
	c.register(cmd, false)
	return cmd
}

// waitRun follows a run until it ends, then prints it; a failed run is an
// error.
func waitRun(ctx context.Context, client *server.Client, id string, out io.Writer) error {
	for {
		r, err := client.GetRun(ctx, id)
		if err != nil {
			return err
		}
		switch r.State {
		case jobs.StateSucceeded, jobs.StateFailed, jobs.StateCancelled:
			printRun(out, r)
			if r.State != jobs.StateSucceeded {
				return fmt.Errorf("run %s %s", r.ID, r.State)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printRun(out io.Writer, r jobs.Run) {
	fmt.Fprintf(out, "run %s  %s  %s  (%s, by %s)\n", r.ID, r.Task(), strings.ToUpper(r.State), r.Trigger, r.Owner)
	if r.Error != "" {
		fmt.Fprintf(out, "  error: %s\n", r.Error)
	}
	for _, a := range r.Attempts {
		took := "-"
		if !a.Ended.IsZero() {
			took = a.Ended.Sub(a.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(out, "  attempt %d  %s  started %s  took %s", a.N, a.State, a.Started.Format(time.RFC3339), took)
		if a.Backoff != "" {
			fmt.Fprintf(out, "  retry in %s", a.Backoff)
		}
		fmt.Fprintln(out)
		if a.Error != "" {
			fmt.Fprintf(out, "    error: %s\n", a.Error)
		}
		for line := range strings.Lines(strings.TrimRight(a.Log, "\n")) {
			fmt.Fprintf(out, "    | %s", line)
		}
		if a.Log != "" {
			fmt.Fprintln(out)
		}
	}
}

func jobsBackfillCmd() *cobra.Command {
	var (
		c        common
		from, to string
		parallel int
		params   []string
	)
	cmd := &cobra.Command{
		Use:   "backfill NAME --from YYYY-MM-DD --to YYYY-MM-DD [--parallel N]",
		Short: "Run a job for every date in a range (dates whose output exists are skipped)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client, err := jobsClient(ctx, &c)
			if err != nil {
				return err
			}
			p, err := jobs.ParseParams(params)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tty := isTerminal(out)
			start := time.Now()
			sum, err := client.Backfill(ctx, args[0], server.BackfillRequest{From: from, To: to, Parallel: parallel, Params: p}, func(bp server.BackfillProgress) {
				if bp.Date == "" {
					return
				}
				if bp.Error != "" {
					if tty {
						fmt.Fprint(out, "\r\033[K")
					}
					fmt.Fprintf(out, "%s failed: %s\n", bp.Date, bp.Error)
				}
				line := fmt.Sprintf("%d/%d dates done, %d failed, %s", bp.Done+bp.Failed, bp.Total, bp.Failed, time.Since(start).Round(time.Second))
				if tty {
					fmt.Fprint(out, "\r\033[K"+line)
				} else if bp.Error == "" {
					fmt.Fprintf(out, "%s done (%s)\n", bp.Date, line)
				}
			})
			if tty {
				fmt.Fprintln(out)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "backfill of %s from %s to %s: %d dates complete, %d failed, in %s\n", args[0], from, to, sum.Done, sum.Failed, time.Since(start).Round(time.Millisecond))
			if sum.Failed > 0 {
				return fmt.Errorf("%d dates failed (sluice jobs status %s shows their runs)", sum.Failed, args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first date (YYYY-MM-DD)")
	cmd.Flags().StringVar(&to, "to", "", "last date (YYYY-MM-DD), included")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "dates at once (default: scheduler.parallel)")
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "another parameter than date, name=value")
	cmd.MarkFlagRequired("from")
	cmd.MarkFlagRequired("to")
	c.register(cmd, false)
	return cmd
}

func jobsStatusCmd() *cobra.Command {
	var (
		c     common
		limit int
	)
	cmd := &cobra.Command{
		Use:   "status [JOB | RUN_ID]",
		Short: "Recent runs (of one job), or one run with its attempts and logs",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			client, err := jobsClient(ctx, &c)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			job := ""
			if len(args) == 1 {
				if r, err := client.GetRun(ctx, args[0]); err == nil {
					printRun(out, r)
					return nil
				}
				job = args[0]
			}
			runs, err := client.Runs(ctx, job, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tTASK\tSTATE\tATTEMPTS\tTRIGGER\tSTARTED\tTOOK\tERROR")
			for _, r := range runs {
				took := "-"
				if !r.Ended.IsZero() {
					took = r.Ended.Sub(r.Created).Round(time.Millisecond).String()
				}
				errText := r.Error
				if len(errText) > 80 {
					errText = errText[:80] + "…"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Task(), r.State, len(r.Attempts), r.Trigger,
					r.Created.Format(time.RFC3339), took, dash(errText))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 30, "runs to show (0: all)")
	c.register(cmd, false)
	return cmd
}

func jobsEnableCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "enable NAME",
		Short: "Enable a job that was disabled after repeated failures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := jobsClient(cmd.Context(), &c)
			if err != nil {
				return err
			}
			if err := client.EnableJob(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %s enabled\n", args[0])
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}

func jobsCancelCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "Stop a run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := jobsClient(cmd.Context(), &c)
			if err != nil {
				return err
			}
			r, err := client.CancelRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %s of %s: cancel requested\n", r.ID, r.Task())
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}
