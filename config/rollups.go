package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice"
)

// Rollup is a real-time rollup (rollups.<name>): the events of a stream
// that pass a filter, counted into buckets of a granularity and groups of
// dimensions, with metrics.
type Rollup struct {
	From        string   `yaml:"from" json:"from" jsonschema:"description=The stream: events (default)\\, logs or a pipeline's or source's stream"`
	Filter      string   `yaml:"filter" json:"filter,omitempty" jsonschema:"description=An expression: only events for which it is true count\\, e.g. event == \"page_view\""`
	Granularity Duration `yaml:"granularity" json:"granularity" jsonschema:"description=The bucket size\\, from 1s to 24h\\, e.g. 1m"`
	Time        string   `yaml:"time" json:"time,omitempty" jsonschema:"description=The event-time field. Default event_time (timestamp for logs)"`
	// Dimensions are fields; Expressions are computed dimensions.
	Dimensions  []string          `yaml:"dimensions" json:"dimensions,omitempty" jsonschema:"description=Fields that split the buckets into groups\\, e.g. [country\\, page_url]"`
	Expressions map[string]string `yaml:"expressions" json:"expressions,omitempty" jsonschema:"description=Computed dimensions: name -> expression over the event\\, e.g. {device: 'lower(device_class)'}"`
	Metrics     map[string]string `yaml:"metrics" json:"metrics" jsonschema:"description=name -> count()\\, sum(f)\\, min(f)\\, max(f)\\, avg(f)\\, distinct(f) (HyperLogLog) or quantile(f\\, 0.95) (DDSketch)"`
	Retention   Duration          `yaml:"retention" json:"retention,omitempty" jsonschema:"description=How long buckets are kept. Default 7d"`
	// Coarsen re-rolls older history to coarser buckets.
	Coarsen []RollupCoarsen `yaml:"coarsen" json:"coarsen,omitempty" jsonschema:"description=Re-roll older intervals to coarser buckets and drop the fine ones\\, e.g. [{after: 2d\\, granularity: 1h}]"`
}

// RollupCoarsen is one step of a rollup's history: intervals older than
// After are re-rolled to buckets of Granularity.
type RollupCoarsen struct {
	After       Duration `yaml:"after" json:"after" jsonschema:"description=Age (from the end of an interval) after which it is re-rolled\\, e.g. 2d"`
	Granularity Duration `yaml:"granularity" json:"granularity" jsonschema:"description=The coarser bucket\\, a multiple of the rollup's that divides a day\\, e.g. 1h"`
}

// DimensionNames are a rollup's dimensions: its fields, then its computed
// ones by name.
func (r Rollup) DimensionNames() []string {
	return append(slices.Clone(r.Dimensions), sortedKeys(r.Expressions)...)
}

func (l *loader) validateRollups(c *Config) {
	streams := append(slices.Clone(sluice.Streams), c.SourceStreams()...)
	streams = append(streams, c.PipelineStreams()...)
	for _, name := range sortedKeys(c.Rollups) {
		r := c.Rollups[name]
		path := "rollups." + name
		if !identRe.MatchString(name) || strings.HasPrefix(name, "sluice_") {
			l.addAtKey(path, fmt.Sprintf("rollup name %q: use letters, digits and _ (not sluice_…)", name), "e.g. pageviews_1m")
		}
		if slices.Contains(streams, name) || c.Pipelines[name].From != nil {
			l.addAtKey(path, fmt.Sprintf("rollup %s has the name of a stream or table; its view needs a name of its own", name), "e.g. "+name+"_1m")
		}
		if r.From == "" {
			r.From = sluice.StreamEvents
		}
		if !slices.Contains(streams, r.From) || r.From == sluice.StreamRaw {
			l.addAt(path+".from", fmt.Sprintf("rollup %s reads %q, which is no stream of events", name, r.From), "the streams are "+strings.Join(streams[1:], ", "))
		}
		if r.Time == "" {
			r.Time = "event_time"
			if r.From == sluice.StreamLogs || slices.Contains(c.SourceStreams(), r.From) {
				r.Time = "timestamp"
			}
		}
		g := r.Granularity.D()
		if g < time.Second || g > 24*time.Hour || (24*time.Hour)%g != 0 {
			l.addAt(path+".granularity", fmt.Sprintf("%s.granularity is %s; it must divide a day, from 1s to 24h", path, r.Granularity), "e.g. granularity: 1m")
		}
		l.checkExpr(path+".filter", r.Filter, true)
		seen := map[string]bool{}
		for i, d := range r.DimensionNames() {
			if !identRe.MatchString(d) || seen[d] || strings.HasSuffix(d, "_sketch") {
				l.addAt(fmt.Sprintf("%s.dimensions[%d]", path, i), fmt.Sprintf("%s: dimension %q is not a name of its own", path, d), "use letters, digits and _, once each, not ending in _sketch")
			}
			seen[d] = true
		}
		for _, k := range sortedKeys(r.Expressions) {
			l.checkExpr(path+".expressions."+k, r.Expressions[k], false)
		}
		if len(r.Metrics) == 0 {
			l.addAtKey(path, fmt.Sprintf("rollup %s has no metrics", name), "e.g. metrics: {views: count(), visitors: distinct(user_id)}")
		}
		for _, k := range sortedKeys(r.Metrics) {
			if !identRe.MatchString(k) || seen[k] || k == "time" {
				l.addAtKey(path+".metrics."+k, fmt.Sprintf("%s.metrics: %q cannot be a column name here", path, k), "use letters, digits and _, not time or a dimension")
			}
			if strings.HasSuffix(k, "_sketch") {
				l.addAtKey(path+".metrics."+k, fmt.Sprintf("%s.metrics: %q ends in _sketch, which names the sketch columns", path, k), "pick another name")
			}
			if _, err := ParseAggregate(r.Metrics[k]); err != nil {
				l.addAt(path+".metrics."+k, fmt.Sprintf("%s.metrics.%s: %v", path, k, err), "count(), sum(f), min(f), max(f), avg(f), distinct(f), quantile(f, 0.95)")
			}
		}
		if r.Retention == 0 {
			r.Retention = Duration(7 * 24 * time.Hour)
		} else if r.Retention.D() < r.Granularity.D() {
			l.addAt(path+".retention", fmt.Sprintf("%s.retention %s is shorter than a bucket", path, r.Retention), "e.g. retention: 7d")
		}
		prev := r.Granularity.D()
		var after time.Duration
		for i, step := range r.Coarsen {
			p := fmt.Sprintf("%s.coarsen[%d]", path, i)
			g := step.Granularity.D()
			switch {
			case g <= prev || prev == 0 || g%prev != 0 || g > 24*time.Hour || (24*time.Hour)%g != 0:
				l.addAt(p+".granularity", fmt.Sprintf("%s.granularity is %s; it must be a multiple of %s (the bucket before it) that divides a day", p, step.Granularity, Duration(prev)), "e.g. granularity: 1h")
			case step.After.D() <= after:
				l.addAt(p+".after", fmt.Sprintf("%s.after is %s; each step must come after the one before it", p, step.After), "e.g. after: 2d")
			case step.After.D() >= r.Retention.D():
				l.addAt(p+".after", fmt.Sprintf("%s.after %s is not within the retention (%s): nothing would be re-rolled", p, step.After, r.Retention), "make it shorter than retention")
			}
			prev, after = g, step.After.D()
		}
		c.Rollups[name] = r
	}
}
