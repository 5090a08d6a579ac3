#!/bin/sh
# Sluice's stream pipeline against Benthos on the same 1,000,000 events, in
# one run (docs/benchmarks.md, "Stream pipelines vs Benthos"). From the
# repository root:
#
#   benchmarks/pipeline/run.sh                       # 1,000,000 events
#   benchmarks/pipeline/run.sh -events 200000 -profile sluice.prof
#
# Flags go to the runner (go run ./benchmarks/pipeline -h). Benthos is built
# from its own module in benchmarks/benthos, never into sluice.
set -eu
cd "$(dirname "$0")/../.."
mkdir -p bin
go build -o bin/sluice ./cmd/sluice
(cd benchmarks/benthos && go build -o ../../bin/benthos-bench .)
go build -o bin/pipeline-bench ./benchmarks/pipeline
exec bin/pipeline-bench -sluice bin/sluice -benthos bin/benthos-bench "$@"
