package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/sluice-data/sluice/config"
	"github.com/sluice-data/sluice/pipeline"
)

// pipelineTest is a test file: example events for one pipeline and what it
// must make of them.
type pipelineTest struct {
	Pipeline string `yaml:"pipeline"`
	Cases    []struct {
		Name  string           `yaml:"name"`
		Input []map[string]any `yaml:"input"`
		// Expect: the rows of the pipeline's outputs (`to`), in any order.
		Expect []map[string]any `yaml:"expect"`
		// Routes: rows of route outputs, by the output's stream, table,
		// topic, file or webhook.
		Routes map[string][]map[string]any `yaml:"routes"`
		// Bad: how many events a step must fail on.
		Bad int `yaml:"bad"`
	} `yaml:"cases"`
}

func testCmd() *cobra.Command {
	var c common
	cmd := &cobra.Command{
		Use:   "test [TEST_FILE...]",
		Short: "Run pipelines on example events and compare with the expected results",
		Long: `Run each pipeline of the config on the example events of its test files
and compare what it makes of them with the expected rows. Test files are YAML:

  pipeline: revenue_per_minute
  cases:
    - name: purchases per minute and country
      input:
        - {event: purchase, event_time: "2026-11-25T10:00:10Z", country: DE, revenue: 10}
      expect:
        - {window_start: "2026-11-25T10:00:00.000000Z", country: DE, purchases: 1, revenue: 10}

Without arguments, the *.test.yaml files beside the config file are run.
Nothing runs against the bus or the outputs; windows are all emitted at the
end of the input. The exit status is 1 when a case fails.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			files := args
			if len(files) == 0 {
				dir := "."
				if c.configFile != "" {
					dir = filepath.Dir(c.configFile)
				}
				files, _ = filepath.Glob(filepath.Join(dir, "*.test.yaml"))
				if len(files) == 0 {
					return fmt.Errorf("no *.test.yaml files in %s: name test files as arguments", dir)
				}
			}
			out := cmd.OutOrStdout()
			failed, passed := 0, 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				var pt pipelineTest
				if err := yaml.UnmarshalWithOptions(data, &pt, yaml.Strict()); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				pc, ok := cfg.Pipelines[pt.Pipeline]
				if !ok {
					return fmt.Errorf("%s: the config has no pipeline %q", f, pt.Pipeline)
				}
				for i, tc := range pt.Cases {
					name := tc.Name
					if name == "" {
						name = fmt.Sprintf("cases[%d]", i)
					}
					p, err := pipeline.New(pipeline.Options{Name: pt.Pipeline, Config: pc, Simulation: true})
					if err != nil {
						return err
					}
					problems, err := runCase(p, pc.To, tc.Input, tc.Expect, tc.Routes, tc.Bad)
					if err != nil {
						return fmt.Errorf("%s: %s: %w", f, name, err)
					}
					if len(problems) > 0 {
						failed++
						fmt.Fprintf(out, "FAIL  %s: %s: %s\n", filepath.Base(f), pt.Pipeline, name)
						for _, pr := range problems {
							fmt.Fprintln(out, "      "+pr)
						}
						continue
					}
					passed++
					fmt.Fprintf(out, "ok    %s: %s: %s\n", filepath.Base(f), pt.Pipeline, name)
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return errors.New(fmt.Sprint(failed, " failed"))
			}
			return nil
		},
	}
	c.register(cmd, false)
	return cmd
}

func runCase(p *pipeline.Pipeline, to []config.Output, input, expect []map[string]any, routes map[string][]map[string]any, bad int) ([]string, error) {
	var events []pipeline.Event
	for _, in := range input {
		ev, err := pipeline.Normalize(in)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		events = append(events, ev)
	}
	res := p.Simulate(events)
	var problems []string
	if len(res.Bad) != bad {
		problems = append(problems, fmt.Sprintf("%d events failed a step, want %d: %v", len(res.Bad), bad, res.Bad))
	}
	want := map[string][]map[string]any{}
	for name, rows := range routes {
		want[name] = rows
	}
	for _, o := range to {
		want[pipeline.OutputName(o)] = expect
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w, err := canonical(want[name])
		if err != nil {
			return nil, err
		}
		g, _ := canonical(res.Outputs[name])
		if !slices.Equal(w, g) {
			problems = append(problems, fmt.Sprintf("%s got:\n        %s\n      want:\n        %s", name, strings.Join(g, "\n        "), strings.Join(w, "\n        ")))
		}
	}
	for name := range res.Outputs {
		if _, ok := want[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s got %d rows; the test expects none there", name, len(res.Outputs[name])))
		}
	}
	return problems, nil
}

// canonical is each row as sorted-key JSON in the steps' form, sorted.
func canonical[M ~map[string]any](rows []M) ([]string, error) {
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		ev, err := pipeline.Normalize(r)
		if err != nil {
			return nil, err
		}
		for k, v := range ev {
			// Times compare as times: 10:00:00Z equals 10:00:00.000000Z.
			if s, ok := v.(string); ok {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					ev[k] = t.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		b, _ := json.Marshal(ev)
		out = append(out, string(b))
	}
	slices.Sort(out)
	return out, nil
}
