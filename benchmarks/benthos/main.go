// Command benthos-bench runs Benthos (github.com/redpanda-data/benthos/v4)
// on the workload of docs/benchmarks.md, "Stream pipelines vs Benthos":
// NDJSON events from a file, a filter and a computed field, NDJSON out to a
// file. It is its own module so that Benthos never enters sluice's build.
//
//	benthos-bench -in events.ndjson -out out.ndjson
//
// It exits when the input file is read and every message is written.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// mapping is the same filter and computed field as the sluice pipeline of
// benchmarks/pipeline: keep the events about a product, add their total.
const mapping = `root = if ["product_view", "add_to_cart", "purchase_item"].contains(this.event) {
  this.merge({"total": this.price * this.quantity.or(1)})
} else {
  deleted()
}`

func main() {
	in := flag.String("in", "", "NDJSON input file")
	out := flag.String("out", "", "NDJSON output file")
	threads := flag.Int("threads", -1, "pipeline threads (-1: one per CPU, Benthos's default)")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: benthos-bench -in FILE -out FILE")
		os.Exit(2)
	}
	if err := run(*in, *out, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "benthos-bench:", err)
		os.Exit(1)
	}
}

func run(in, out string, threads int) error {
	b := service.NewStreamBuilder()
	if err := b.SetLoggerYAML("level: warn"); err != nil {
		return err
	}
	if err := b.AddInputYAML(fmt.Sprintf("file:\n  paths: [%s]\n  scanner:\n    lines: {}\n", strconv.Quote(in))); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	b.SetThreads(threads)
	if err := b.AddProcessorYAML("mapping: " + strconv.Quote(mapping)); err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	if err := b.AddOutputYAML(fmt.Sprintf("file:\n  path: %s\n  codec: lines\n", strconv.Quote(out))); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	s, err := b.Build()
	if err != nil {
		return err
	}
	return s.Run(context.Background())
}
