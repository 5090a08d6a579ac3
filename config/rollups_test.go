package config

import (
	"testing"
	"time"
)

func TestRollupConfig(t *testing.T) {
	c, err := Load("../examples/realtime/sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rollups["pageviews_1m"]
	if r.From != "events" || r.Time != "event_time" || r.Granularity.D() != time.Minute || r.Retention.D() != 30*24*time.Hour || len(r.Coarsen) != 1 || c.Jobs["rebuild_pageviews"].Rollup == nil ||
		len(r.Metrics) != 2 || r.Metrics["visitors"] != "distinct(user_id)" {
		t.Fatalf("example rollup: %+v", r)
	}
	for _, tc := range []struct {
		name, src string
		want      wantErr
	}{
		{"granularity", "rollups:\n  r: {granularity: 7m, metrics: {n: count()}}\n",
			wantErr{2, 20, "rollups.r.granularity", "rollups.r.granularity is 7m; it must divide a day, from 1s to 24h", ""}},
		{"no metrics", "rollups:\n  r: {granularity: 1m}\n",
			wantErr{2, 3, "rollups.r", "rollup r has no metrics", ""}},
		{"bad metric", "rollups:\n  r: {granularity: 1m, metrics: {n: cnt()}}\n",
			wantErr{2, 37, "rollups.r.metrics.n", "unknown aggregate cnt", ""}},
		{"metric named like a dimension", "rollups:\n  r: {granularity: 1m, dimensions: [country], metrics: {country: count()}}\n",
			wantErr{2, 57, "rollups.r.metrics.country", `rollups.r.metrics: "country" cannot be a column name here`, ""}},
		{"metric named like a sketch", "rollups:\n  r: {granularity: 1m, metrics: {n_sketch: count()}}\n",
			wantErr{2, 34, "rollups.r.metrics.n_sketch", `rollups.r.metrics: "n_sketch" ends in _sketch`, ""}},
		{"coarsen finer", "rollups:\n  r: {granularity: 1h, metrics: {n: count()}, coarsen: [{after: 1d, granularity: 1m}]}\n",
			wantErr{2, 82, "rollups.r.coarsen[0].granularity", "rollups.r.coarsen[0].granularity is 1m; it must be a multiple of 1h", ""}},
		{"coarsen out of order", "rollups:\n  r: {granularity: 1m, metrics: {n: count()}, coarsen: [{after: 2d, granularity: 1h}, {after: 1d, granularity: 24h}]}\n",
			wantErr{2, 95, "rollups.r.coarsen[1].after", "rollups.r.coarsen[1].after is 24h; each step must come after", ""}},
		{"coarsen past retention", "rollups:\n  r: {granularity: 1m, retention: 1d, metrics: {n: count()}, coarsen: [{after: 2d, granularity: 1h}]}\n",
			wantErr{2, 80, "rollups.r.coarsen[0].after", "is not within the retention", ""}},
		{"unknown stream", "rollups:\n  r: {from: evnts, granularity: 1m, metrics: {n: count()}}\n",
			wantErr{2, 13, "rollups.r.from", `rollup r reads "evnts", which is no stream of events`, ""}},
		{"bad filter", "rollups:\n  r: {filter: 'event ==', granularity: 1m, metrics: {n: count()}}\n",
			wantErr{2, 15, "rollups.r.filter", "rollups.r.filter:", ""}},
		{"name of a stream", "rollups:\n  events: {granularity: 1m, metrics: {n: count()}}\n",
			wantErr{2, 3, "rollups.events", "rollup events has the name of a stream or table", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErrors(t, tc.src, []wantErr{tc.want}) })
	}
}
