package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/server"
)

func tapCmd() *cobra.Command {
	var c common
	var tr server.TapRequest
	var format string
	cmd := &cobra.Command{
		Use:   "tap STREAM [--filter EXPR]",
		Short: "Print a stream's events live, as the running server's bus carries them",
		Long: `Tap prints the events of a stream (events, bad, logs, raw, or a source's or
pipeline's own stream) as they arrive, one JSON object per line, each with
"_seq", the bus sequence of the message that carried it. It reads through the
running server's API and leaves nothing behind on the bus.

--filter keeps the events for which an expression is true: the event's
top-level fields are its variables, a field it lacks is nil (the language is
expr's, as in a pipeline's filter step). An event the filter fails on, say
revenue * 2 where revenue is a string, is skipped; the first such failure is
reported on stderr.

raw holds collector payloads, not events: tap shows one object per message,
with its size and each payload's metadata (path, content type, headers, body
size), not the bodies.`,
		Example: `  sluice tap events
  sluice tap events --filter 'event == "purchase" && revenue > 10'
  sluice tap bad --from beginning --limit 20
  sluice tap raw --filter 'size > 100000'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" {
				format = "json"
				if isTerminal(cmd.OutOrStdout()) {
					format = "pretty"
				}
			}
			if format != "json" && format != "pretty" {
				return fmt.Errorf("--format %q: want json or pretty", format)
			}
			ctx := cmd.Context()
			cfg, client, err := c.client(ctx)
			if err != nil {
				return err
			}
			if client == nil {
				return fmt.Errorf("no sluice server is running on %s: tap reads the live bus of a running server; start one with `sluice up`, or pass --api-addr HOST:PORT", cfg.DataDir)
			}
			tr.Stream = args[0]
			body, from, err := client.Tap(ctx, tr)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			defer body.Close()
			fmt.Fprintf(cmd.ErrOrStderr(), "tapping %s from sequence %d (Ctrl-C to stop)\n", tr.Stream, from)
			n, err := printTap(cmd.OutOrStdout(), cmd.ErrOrStderr(), body, format == "pretty")
			switch {
			case ctx.Err() != nil: // Ctrl-C
				return nil
			case err != nil:
				return fmt.Errorf("tap %s: the connection to the server broke: %w", tr.Stream, err)
			case tr.Limit > 0 && n >= tr.Limit:
				return nil
			}
			return fmt.Errorf("tap %s: the server ended the tap (is it stopping?)", tr.Stream)
		},
	}
	c.register(cmd, false)
	cmd.Flags().StringVar(&tr.Filter, "filter", "", `print only the events this expression is true for, e.g. 'event == "purchase" && revenue > 10'`)
	cmd.Flags().StringVar(&tr.From, "from", "now", "where to start: now, beginning (all the stream still keeps) or a sequence number")
	cmd.Flags().IntVar(&tr.Limit, "limit", 0, "stop after this many events (0: until Ctrl-C)")
	cmd.Flags().StringVar(&format, "format", "", "json (one object per line) or pretty (indented); default: pretty on a terminal, else json")
	return cmd
}

// printTap copies the tap's events from r to out, indented when pretty,
// and its filter failure reports to errOut; it returns how many events it
// printed. Output is flushed whenever the server has sent nothing more yet.
func printTap(out, errOut io.Writer, r io.Reader, pretty bool) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	bw := bufio.NewWriter(out)
	defer bw.Flush()
	n := 0
	var ind bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			if bytes.HasPrefix(line, []byte(`{"`+server.TapError+`":`)) {
				var e map[string]string
				_ = json.Unmarshal(line, &e)
				fmt.Fprintln(errOut, "sluice tap:", e[server.TapError])
			} else {
				n++
				if pretty && json.Indent(&ind, bytes.TrimRight(line, "\n"), "", "  ") == nil {
					ind.WriteByte('\n')
					line = ind.Bytes()
				}
				if _, werr := bw.Write(line); werr != nil {
					return n, werr
				}
				ind.Reset()
			}
		}
		if br.Buffered() == 0 {
			if ferr := bw.Flush(); ferr != nil {
				return n, ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// isTerminal reports whether w is a terminal (not a pipe or a file).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
